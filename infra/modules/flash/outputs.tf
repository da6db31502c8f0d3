# Everything the gitops/ overlays and the release workflow need from this environment.
# `terraform output -json gitops` prints them as one object.

locals {
  ecr_registry = "${coalesce(var.ecr_registry_account_id, local.account_id)}.dkr.ecr.${local.region}.${local.dns_suffix}"

  ecr_repository_urls = { for name in var.ecr_repository_names : name => "${local.ecr_registry}/${name}" }

  certificate_arn = (
    var.route53_zone_id == null
    ? aws_acm_certificate.this.arn
    : aws_acm_certificate_validation.this[0].certificate_arn
  )

  secret_names = {
    database_url     = aws_secretsmanager_secret.this["database-url"].name
    redis_url        = aws_secretsmanager_secret.this["redis-url"].name
    amqp_url         = aws_secretsmanager_secret.this["amqp-url"].name
    api_signing_key  = aws_secretsmanager_secret.this["api-signing-key"].name
    gate_signing_key = aws_secretsmanager_secret.this["gate-signing-key"].name
    admin            = aws_secretsmanager_secret.this["admin"].name
    grafana_admin    = aws_secretsmanager_secret.this["grafana-admin"].name
    alertmanager     = aws_secretsmanager_secret.operator["alertmanager"].name
  }
}

output "region" {
  description = "AWS region of the environment."
  value       = local.region
}

output "account_id" {
  description = "AWS account of the environment."
  value       = local.account_id
}

output "kubernetes_namespace" {
  description = "Namespace of the Flash Tickets services."
  value       = local.app_namespace
}

################################################################################
# Cluster
################################################################################

output "cluster_name" {
  description = "EKS cluster name."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = module.eks.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA bundle of the Kubernetes API."
  value       = module.eks.cluster_certificate_authority_data
}

output "cluster_version" {
  description = "Kubernetes version of the control plane."
  value       = module.eks.cluster_version
}

output "oidc_provider_arn" {
  description = "IAM OIDC provider of the cluster (IRSA)."
  value       = module.eks.oidc_provider_arn
}

output "vpc_id" {
  description = "VPC id (the AWS Load Balancer Controller's vpcId value)."
  value       = module.vpc.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets (nodes, internal load balancers)."
  value       = module.vpc.private_subnets
}

output "public_subnet_ids" {
  description = "Public subnets (internet-facing load balancers)."
  value       = module.vpc.public_subnets
}

output "node_security_group_id" {
  description = "Security group of every node; Karpenter selects it by the discovery tag."
  value       = module.eks.node_security_group_id
}

output "system_node_selector" {
  description = "Node labels of the managed system node group (nodeSelector for Argo CD, the controllers and Karpenter)."
  value       = local.system_node_labels
}

################################################################################
# Controllers (IRSA)
################################################################################

output "aws_load_balancer_controller_role_arn" {
  description = "IRSA role of the AWS Load Balancer Controller (kube-system/aws-load-balancer-controller)."
  value       = module.lbc_irsa.iam_role_arn
}

output "external_secrets_role_arn" {
  description = "IRSA role of External Secrets (external-secrets/external-secrets), read-only on this environment's secrets."
  value       = module.external_secrets_irsa.iam_role_arn
}

output "ebs_csi_driver_role_arn" {
  description = "IRSA role of the EBS CSI driver add-on."
  value       = module.ebs_csi_irsa.iam_role_arn
}

output "karpenter_controller_role_arn" {
  description = "IRSA role of the Karpenter controller."
  value       = module.karpenter.iam_role_arn
}

output "karpenter_namespace" {
  description = "Namespace of the Karpenter controller."
  value       = local.karpenter_namespace
}

output "karpenter_service_account" {
  description = "Service account of the Karpenter controller."
  value       = local.karpenter_sa
}

output "karpenter_node_role_name" {
  description = "IAM role of Karpenter's nodes (EC2NodeClass spec.role)."
  value       = module.karpenter.node_iam_role_name
}

output "karpenter_interruption_queue_name" {
  description = "SQS interruption queue (Karpenter settings.interruptionQueue)."
  value       = module.karpenter.queue_name
}

output "karpenter_discovery_tag" {
  description = "Tag on the private subnets and the node security group (EC2NodeClass selector terms)."
  value       = local.discovery_tag
}

################################################################################
# Images, certificate, secrets
################################################################################

output "ecr_repository_urls" {
  description = "Image repository URL of each service."
  value       = local.ecr_repository_urls
}

output "acm_certificate_arn" {
  description = "ACM certificate of the ALB (alb.ingress.kubernetes.io/certificate-arn)."
  value       = local.certificate_arn
}

output "acm_validation_records" {
  description = "DNS records that validate the certificate (created automatically when route53_zone_id is set)."
  value       = local.acm_validation_records
}

output "secret_store_name" {
  description = "ClusterSecretStore the ExternalSecrets reference."
  value       = local.secret_store_name
}

output "secret_names" {
  description = "Secrets Manager names the ExternalSecrets read."
  value       = local.secret_names
}

################################################################################
# Data stores (endpoints only; credentials are in the secrets)
################################################################################

output "postgres_endpoint" {
  description = "RDS PostgreSQL host:port."
  value       = module.postgres.db_instance_endpoint
}

output "redis_endpoint" {
  description = "ElastiCache endpoint: the configuration endpoint in cluster mode, else the primary endpoint."
  value       = "${local.redis_host}:6379"
}

output "redis_cluster_mode_enabled" {
  description = "Whether Redis runs in cluster mode (clients must then be cluster-aware)."
  value       = var.redis_cluster_mode_enabled
}

output "mq_endpoint" {
  description = "Amazon MQ AMQPS endpoint."
  value       = local.mq_endpoint
}

output "mq_console_url" {
  description = "RabbitMQ management console (reachable from inside the VPC only)."
  value       = aws_mq_broker.rabbitmq.instances[0].console_url
}

################################################################################
# All of it, for gitops/
################################################################################

output "gitops" {
  description = "The values the gitops/ overlays need, as one object."
  value = {
    region               = local.region
    cluster_name         = module.eks.cluster_name
    cluster_endpoint     = module.eks.cluster_endpoint
    vpc_id               = module.vpc.vpc_id
    namespace            = local.app_namespace
    system_node_selector = local.system_node_labels
    certificate_arn      = local.certificate_arn
    ecr_repository_urls  = local.ecr_repository_urls
    secret_store_name    = local.secret_store_name
    secret_names         = local.secret_names
    aws_load_balancer_controller = {
      role_arn        = module.lbc_irsa.iam_role_arn
      namespace       = local.lbc_namespace
      service_account = local.lbc_sa
    }
    external_secrets = {
      role_arn        = module.external_secrets_irsa.iam_role_arn
      namespace       = local.eso_namespace
      service_account = local.eso_sa
    }
    karpenter = {
      controller_role_arn     = module.karpenter.iam_role_arn
      namespace               = local.karpenter_namespace
      service_account         = local.karpenter_sa
      node_role_name          = module.karpenter.node_iam_role_name
      interruption_queue_name = module.karpenter.queue_name
      discovery_tag           = local.discovery_tag
    }
    stores = {
      postgres_endpoint          = module.postgres.db_instance_endpoint
      redis_endpoint             = "${local.redis_host}:6379"
      redis_cluster_mode_enabled = var.redis_cluster_mode_enabled
      mq_endpoint                = local.mq_endpoint
    }
  }
}
