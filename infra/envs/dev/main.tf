# dev: the whole stack at the smallest sizes that still behave like prod (three AZs, TLS
# everywhere, Multi-AZ Redis), with one NAT gateway, a single-AZ database and a single broker.
# Everything here can be destroyed and recreated (no deletion protection, no final snapshots).

module "flash" {
  source = "../../modules/flash"

  environment = "dev"

  vpc_cidr           = "10.10.0.0/16"
  single_nat_gateway = true
  log_retention_days = 30

  cluster_endpoint_public_access_cidrs = var.cluster_endpoint_public_access_cidrs
  cluster_admin_role_arns              = var.cluster_admin_role_arns
  enable_metrics_server_addon          = var.enable_metrics_server_addon

  system_node_instance_types = ["t3.large"]
  system_node_min_size       = 2
  system_node_max_size       = 3
  system_node_desired_size   = 2

  postgres_instance_class        = "db.t4g.medium"
  postgres_allocated_storage     = 20
  postgres_max_allocated_storage = 100
  postgres_multi_az              = false
  postgres_backup_retention_days = 7
  postgres_skip_final_snapshot   = true

  redis_node_type               = "cache.t4g.small"
  redis_cluster_mode_enabled    = var.redis_cluster_mode_enabled
  redis_shards                  = 1
  redis_replicas_per_shard      = 1
  redis_snapshot_retention_days = 1

  mq_instance_type = "mq.t3.micro"
  mq_cluster       = false

  deletion_protection         = false
  apply_immediately           = true
  secret_recovery_window_days = 0
  kms_deletion_window_days    = 7

  domain_name               = var.domain_name
  subject_alternative_names = var.subject_alternative_names
  route53_zone_id           = var.route53_zone_id
  admin_email               = var.admin_email

  argocd_bootstrap = var.argocd_bootstrap
}
