"""The local cloud: deploy a synthesized app into DynamoDB Local + moto and run its functions.

>>> from ddb_stream_patterns.local import LocalCloud, deploy      # doctest: +SKIP
>>> with LocalCloud() as cloud, deploy(cloud, "cdk.out") as deployment:
...     print(deployment.summary())

No AWS account, Docker or CloudFormation engine is involved: see ``deployer`` for what
is created, skipped (policies, IAM) and unsupported (OpenSearch).
"""

from .cloud import LocalCloud
from .deployer import DeployedResource, Deployment, DeploymentError, deploy
from .functions import FunctionError, LocalFunction

__all__ = [
    "DeployedResource",
    "Deployment",
    "DeploymentError",
    "FunctionError",
    "LocalCloud",
    "LocalFunction",
    "deploy",
]
