"""Suite-wide safety: no test can reach AWS. Dummy credentials and a fixed region everywhere."""

from __future__ import annotations

import os

os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SECURITY_TOKEN"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_PROFILE", None)
# Lambda's Tracer and Metrics stay quiet outside Lambda.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "DynamoWave")
os.environ.setdefault("POWERTOOLS_DEV", "false")
# jsii (aws-cdk-lib) warns on every start under an end-of-life Node.js such as this machine's 20;
# deployers are not silenced (stacks/application.py), the suite's output is.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
