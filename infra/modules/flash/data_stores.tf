# The three stores are reachable only from the EKS node security group (every node, managed or
# Karpenter's, carries it) and the cluster's primary security group, on their TLS port only.

locals {
  stores = {
    postgres = { port = 5432, description = "PostgreSQL (RDS)" }
    redis    = { port = 6379, description = "Redis (ElastiCache, TLS)" }
    rabbitmq = { port = 5671, description = "RabbitMQ (Amazon MQ, AMQPS)" }
  }

  store_clients = {
    nodes   = module.eks.node_security_group_id
    cluster = module.eks.cluster_primary_security_group_id
  }

  store_ingress = {
    for pair in setproduct(keys(local.stores), keys(local.store_clients)) :
    "${pair[0]}-from-${pair[1]}" => { store = pair[0], client = pair[1] }
  }
}

resource "aws_security_group" "store" {
  for_each = local.stores

  name_prefix = "${local.name}-${each.key}-"
  description = "${each.value.description}: EKS nodes only"
  vpc_id      = module.vpc.vpc_id

  tags = merge(local.tags, { Name = "${local.name}-${each.key}" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "store" {
  for_each = local.store_ingress

  security_group_id            = aws_security_group.store[each.value.store].id
  referenced_security_group_id = local.store_clients[each.value.client]
  ip_protocol                  = "tcp"
  from_port                    = local.stores[each.value.store].port
  to_port                      = local.stores[each.value.store].port
  description                  = "${local.stores[each.value.store].description} from the EKS ${each.value.client} security group"

  tags = local.tags
}

################################################################################
# PostgreSQL
################################################################################

resource "random_password" "postgres" {
  length  = 40
  special = false
}

locals {
  postgres_major = split(".", var.postgres_engine_version)[0]
}

module "postgres" {
  source  = "terraform-aws-modules/rds/aws"
  version = "6.12.0"

  identifier = local.name

  engine               = "postgres"
  engine_version       = var.postgres_engine_version
  family               = "postgres${local.postgres_major}"
  major_engine_version = local.postgres_major
  instance_class       = var.postgres_instance_class

  storage_type          = "gp3"
  allocated_storage     = var.postgres_allocated_storage
  max_allocated_storage = var.postgres_max_allocated_storage
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.data.arn

  db_name  = "flash"
  username = "flash"
  port     = 5432

  # The password goes into the database-url secret the services read, so Terraform owns it
  # rather than RDS's own managed secret.
  manage_master_user_password         = false
  password                            = random_password.postgres.result
  iam_database_authentication_enabled = true

  multi_az               = var.postgres_multi_az
  create_db_subnet_group = false
  db_subnet_group_name   = module.vpc.database_subnet_group_name
  vpc_security_group_ids = [aws_security_group.store["postgres"].id]
  publicly_accessible    = false
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  maintenance_window      = "Sun:03:00-Sun:04:00"
  backup_window           = "01:00-02:00"
  backup_retention_period = var.postgres_backup_retention_days
  copy_tags_to_snapshot   = true

  deletion_protection              = var.deletion_protection
  skip_final_snapshot              = var.postgres_skip_final_snapshot
  final_snapshot_identifier_prefix = "${local.name}-final"
  delete_automated_backups         = !var.deletion_protection

  auto_minor_version_upgrade = true
  apply_immediately          = var.apply_immediately

  performance_insights_enabled          = true
  performance_insights_retention_period = 7
  performance_insights_kms_key_id       = aws_kms_key.data.arn

  monitoring_interval             = 60
  create_monitoring_role          = true
  monitoring_role_name            = "${local.name}-rds-monitoring"
  monitoring_role_use_name_prefix = false

  enabled_cloudwatch_logs_exports        = ["postgresql", "upgrade"]
  create_cloudwatch_log_group            = true
  cloudwatch_log_group_retention_in_days = var.log_retention_days
  cloudwatch_log_group_kms_key_id        = aws_kms_key.data.arn

  create_db_option_group          = false
  create_db_parameter_group       = true
  parameter_group_name            = "${local.name}-postgres${local.postgres_major}"
  parameter_group_use_name_prefix = true
  parameters = [
    # TLS only: plain connections are refused.
    { name = "rds.force_ssl", value = "1" },
    { name = "ssl_min_protocol_version", value = "TLSv1.2" },
    { name = "log_min_duration_statement", value = "250" },
    { name = "log_lock_waits", value = "1" },
  ]

  tags = local.tags
}

################################################################################
# Redis
################################################################################

# Alphanumeric: valid as an AUTH token and safe inside a URL.
resource "random_password" "redis" {
  length  = 64
  special = false
}

resource "aws_elasticache_parameter_group" "redis" {
  name        = "${local.name}-redis7-${var.redis_cluster_mode_enabled ? "cluster" : "single"}"
  family      = "redis7"
  description = "${local.name} waiting room"

  parameter {
    name  = "cluster-enabled"
    value = var.redis_cluster_mode_enabled ? "yes" : "no"
  }

  # The queue state has no copy elsewhere: refuse writes when full rather than evict.
  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }

  tags = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "redis_slow" {
  name              = "/aws/elasticache/${local.name}/slow-log"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn

  tags = local.tags
}

resource "aws_elasticache_replication_group" "redis" {
  replication_group_id = local.name
  description          = "${local.name} waiting room"

  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.redis_node_type
  port                 = 6379
  parameter_group_name = aws_elasticache_parameter_group.redis.name

  num_node_groups         = var.redis_cluster_mode_enabled ? var.redis_shards : null
  replicas_per_node_group = var.redis_cluster_mode_enabled ? var.redis_replicas_per_shard : null
  num_cache_clusters      = var.redis_cluster_mode_enabled ? null : 1 + var.redis_replicas_per_shard

  automatic_failover_enabled = true
  multi_az_enabled           = true

  subnet_group_name  = module.vpc.elasticache_subnet_group_name
  security_group_ids = [aws_security_group.store["redis"].id]

  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.data.arn
  transit_encryption_enabled = true
  auth_token                 = random_password.redis.result

  snapshot_retention_limit  = var.redis_snapshot_retention_days
  snapshot_window           = "02:00-03:00"
  maintenance_window        = "sun:04:00-sun:05:00"
  final_snapshot_identifier = var.deletion_protection ? "${local.name}-redis-final" : null

  auto_minor_version_upgrade = true
  apply_immediately          = var.apply_immediately

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.redis_slow.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }

  tags = local.tags
}

################################################################################
# RabbitMQ
################################################################################

# Amazon MQ: 12+ characters, no commas, colons or equals signs; alphanumeric is URL-safe too.
resource "random_password" "rabbitmq" {
  length  = 40
  special = false
}

resource "aws_mq_broker" "rabbitmq" {
  broker_name = local.name

  engine_type        = "RabbitMQ"
  engine_version     = var.mq_engine_version
  host_instance_type = var.mq_instance_type
  deployment_mode    = var.mq_cluster ? "CLUSTER_MULTI_AZ" : "SINGLE_INSTANCE"

  subnet_ids          = var.mq_cluster ? module.vpc.database_subnets : [module.vpc.database_subnets[0]]
  security_groups     = [aws_security_group.store["rabbitmq"].id]
  publicly_accessible = false

  auto_minor_version_upgrade = true
  apply_immediately          = var.apply_immediately

  maintenance_window_start_time {
    day_of_week = "SUNDAY"
    time_of_day = "05:00"
    time_zone   = "UTC"
  }

  user {
    username = "flash"
    password = random_password.rabbitmq.result
  }

  # RabbitMQ brokers publish general logs only (no audit log).
  logs {
    general = true
  }

  tags = local.tags
}

locals {
  postgres_url = "postgres://flash:${random_password.postgres.result}@${module.postgres.db_instance_address}:5432/flash?sslmode=require"

  redis_host = (
    var.redis_cluster_mode_enabled
    ? aws_elasticache_replication_group.redis.configuration_endpoint_address
    : aws_elasticache_replication_group.redis.primary_endpoint_address
  )
  redis_url = "rediss://:${random_password.redis.result}@${local.redis_host}:6379"

  # amqps://b-<id>.mq.<region>.on.aws:5671 (one endpoint for a single broker and for a cluster).
  mq_endpoint = aws_mq_broker.rabbitmq.instances[0].endpoints[0]
  mq_host     = regex("^amqps://([^:/]+)", local.mq_endpoint)[0]
  amqp_url    = "amqps://flash:${random_password.rabbitmq.result}@${local.mq_host}:5671/%2f"
}
