"""The library every pipeline Lambda ships with.

Nothing here imports the local cloud, the CDK app, the stepfunctions SDK or the sagemaker
SDK: Lambda packages stay small and start fast.
"""
