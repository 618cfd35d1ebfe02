"""AWS Security Incident Response: cases polled through boto3 (`aws_security_ir`, `pip install 'alertbridge[aws]'`).

    parser.py  one case update as an alert (pure)
    poller.py  AwsSecurityIrSource: sweeps of ListCases, each updated case read in full
    api.py     boto3 in a thread: credentials, typed errors
"""

from .parser import AwsSecurityIrParser
from .poller import AwsSecurityIrSource

__all__ = ["AwsSecurityIrParser", "AwsSecurityIrSource"]
