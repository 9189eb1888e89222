"""The ingress Lambda function."""
