"""Custom::CacheIngress: grants an EC2 security group access to an ElastiCache cache security group."""
