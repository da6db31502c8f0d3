# prod: one NAT gateway per AZ, Multi-AZ PostgreSQL with deletion protection and a final
# snapshot, a three-node RabbitMQ cluster, Redis with a replica in another AZ, 30-day recovery
# windows on secrets and keys.

module "flash" {
  source = "../../modules/flash"

  environment = "prod"

  vpc_cidr           = "10.20.0.0/16"
  single_nat_gateway = false
  log_retention_days = 90

  cluster_endpoint_public_access_cidrs = var.cluster_endpoint_public_access_cidrs
  cluster_admin_role_arns              = var.cluster_admin_role_arns
  enable_metrics_server_addon          = var.enable_metrics_server_addon

  system_node_instance_types = ["m6i.large"]
  system_node_min_size       = 3
  system_node_max_size       = 5
  system_node_desired_size   = 3

  postgres_instance_class        = "db.r6g.large"
  postgres_allocated_storage     = 100
  postgres_max_allocated_storage = 500
  postgres_multi_az              = true
  postgres_backup_retention_days = 14
  postgres_skip_final_snapshot   = false

  redis_node_type               = "cache.m7g.large"
  redis_cluster_mode_enabled    = var.redis_cluster_mode_enabled
  redis_shards                  = 1
  redis_replicas_per_shard      = 1
  redis_snapshot_retention_days = 7

  mq_instance_type = "mq.m5.large"
  mq_cluster       = true

  deletion_protection         = true
  apply_immediately           = false
  secret_recovery_window_days = 30
  kms_deletion_window_days    = 30

  domain_name               = var.domain_name
  subject_alternative_names = var.subject_alternative_names
  route53_zone_id           = var.route53_zone_id
  admin_email               = var.admin_email

  argocd_bootstrap = var.argocd_bootstrap
}
