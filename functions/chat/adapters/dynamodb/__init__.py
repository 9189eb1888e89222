"""The DynamoDB adapters: `store.ChatStore` joins the per-aggregate tables of this folder."""
