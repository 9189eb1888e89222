"""DynamoWave's command line and local runtime (gateway emulator, Lambda runner, event sources)."""
