# Pass-through of the module's outputs (see modules/flash/outputs.tf for descriptions).

output "gitops" {
  description = "Everything the gitops/ overlays need, as one object."
  value       = module.flash.gitops
}

output "region" {
  description = "AWS region."
  value       = module.flash.region
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = module.flash.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = module.flash.cluster_endpoint
}

output "kubernetes_namespace" {
  description = "Namespace of the services."
  value       = module.flash.kubernetes_namespace
}

output "vpc_id" {
  description = "VPC id."
  value       = module.flash.vpc_id
}

output "system_node_selector" {
  description = "Labels of the system node group."
  value       = module.flash.system_node_selector
}

output "aws_load_balancer_controller_role_arn" {
  description = "IRSA role of the AWS Load Balancer Controller."
  value       = module.flash.aws_load_balancer_controller_role_arn
}

output "external_secrets_role_arn" {
  description = "IRSA role of External Secrets."
  value       = module.flash.external_secrets_role_arn
}

output "ebs_csi_driver_role_arn" {
  description = "IRSA role of the EBS CSI driver."
  value       = module.flash.ebs_csi_driver_role_arn
}

output "karpenter_controller_role_arn" {
  description = "IRSA role of the Karpenter controller."
  value       = module.flash.karpenter_controller_role_arn
}

output "karpenter_namespace" {
  description = "Namespace of the Karpenter controller."
  value       = module.flash.karpenter_namespace
}

output "karpenter_service_account" {
  description = "Service account of the Karpenter controller."
  value       = module.flash.karpenter_service_account
}

output "karpenter_node_role_name" {
  description = "IAM role of Karpenter's nodes."
  value       = module.flash.karpenter_node_role_name
}

output "karpenter_interruption_queue_name" {
  description = "Karpenter's interruption queue."
  value       = module.flash.karpenter_interruption_queue_name
}

output "karpenter_discovery_tag" {
  description = "Karpenter discovery tag."
  value       = module.flash.karpenter_discovery_tag
}

output "ecr_repository_urls" {
  description = "Image repositories."
  value       = module.flash.ecr_repository_urls
}

output "acm_certificate_arn" {
  description = "Certificate of the ALB."
  value       = module.flash.acm_certificate_arn
}

output "acm_validation_records" {
  description = "DNS records validating the certificate."
  value       = module.flash.acm_validation_records
}

output "secret_store_name" {
  description = "ClusterSecretStore name."
  value       = module.flash.secret_store_name
}

output "secret_names" {
  description = "Secrets Manager names."
  value       = module.flash.secret_names
}

output "postgres_endpoint" {
  description = "RDS PostgreSQL host:port."
  value       = module.flash.postgres_endpoint
}

output "redis_endpoint" {
  description = "ElastiCache endpoint."
  value       = module.flash.redis_endpoint
}

output "redis_cluster_mode_enabled" {
  description = "Whether Redis runs in cluster mode."
  value       = module.flash.redis_cluster_mode_enabled
}

output "mq_endpoint" {
  description = "Amazon MQ AMQPS endpoint."
  value       = module.flash.mq_endpoint
}

output "mq_console_url" {
  description = "RabbitMQ management console (VPC only)."
  value       = module.flash.mq_console_url
}
