# One customer-managed key per environment encrypts the data at rest that supports a CMK:
# RDS storage and Performance Insights, ElastiCache, Secrets Manager, CloudWatch log groups and
# EBS volumes created through the EBS CSI driver. (Amazon MQ for RabbitMQ accepts only AWS-owned
# keys; the EKS module creates its own key for Kubernetes secrets.)

# Key policy: the account administers the key through IAM (the "*" resource of a key policy is
# the key itself), and CloudWatch Logs may use it for this account's log groups only.
locals {
  data_key_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsOfThisAccount"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.${local.dns_suffix}" }
        Action = [
          "kms:Encrypt*",
          "kms:Decrypt*",
          "kms:ReEncrypt*",
          "kms:GenerateDataKey*",
          "kms:Describe*",
        ]
        Resource = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"
          }
        }
      },
    ]
  })
}

resource "aws_kms_key" "data" {
  description             = "${local.name} data at rest (RDS, ElastiCache, Secrets Manager, logs)"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = local.data_key_policy

  tags = local.tags
}

resource "aws_kms_alias" "data" {
  name          = "alias/${local.name}-data"
  target_key_id = aws_kms_key.data.key_id
}
