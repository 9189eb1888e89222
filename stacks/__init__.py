"""DynamoWave infrastructure (AWS CDK): one thin stack composed of one construct per concern."""
