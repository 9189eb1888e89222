"""DynamoWave Lambda functions: one thin handler per package over the shared `chat` domain core."""
