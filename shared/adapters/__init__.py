"""One small adapter per AWS service, each taking an injected boto3 client.

Adapters speak in the pipeline's terms (None for "not found", named errors for failures) and
translate AWS errors by their *code*; logic never sees botocore.
"""
