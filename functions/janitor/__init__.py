"""The janitor Lambda function."""
