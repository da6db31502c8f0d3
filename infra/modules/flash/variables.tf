################################################################################
# Identity
################################################################################

variable "project" {
  description = "Short project name, the first part of every resource name."
  type        = string
  default     = "flash"
}

variable "environment" {
  description = "Environment name: dev or prod. The EKS cluster is named <project>-<environment>."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "tags" {
  description = "Extra tags for every resource (the provider's default_tags carry the common ones)."
  type        = map(string)
  default     = {}
}

################################################################################
# Network
################################################################################

variable "vpc_cidr" {
  description = "CIDR of the VPC (a /16): three /19 private subnets for nodes and pods, /24s for public, database and cache subnets."
  type        = string

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && endswith(var.vpc_cidr, "/16")
    error_message = "vpc_cidr must be a valid /16."
  }
}

variable "availability_zone_suffixes" {
  description = "The three AZs of the region to use, by suffix (eu-west-1 + a, b, c)."
  type        = list(string)
  default     = ["a", "b", "c"]

  validation {
    condition     = length(var.availability_zone_suffixes) == 3
    error_message = "Exactly three availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for the whole VPC (cheaper, one AZ's outage cuts egress) instead of one per AZ."
  type        = bool
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (EKS control plane, VPC flow logs, RDS, Redis slow log)."
  type        = number
  default     = 30
}

################################################################################
# EKS
################################################################################

variable "kubernetes_version" {
  description = "EKS Kubernetes version (<major>.<minor>). Upgrade one minor at a time."
  type        = string
  default     = "1.33"
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the public Kubernetes API endpoint. Empty: the endpoint is private only (reachable from the VPC)."
  type        = list(string)
  default     = []
}

variable "cluster_admin_role_arns" {
  description = "IAM role ARNs granted cluster-admin through EKS access entries, besides the identity running Terraform (which is admin already: do not list it again)."
  type        = list(string)
  default     = []
}

variable "system_node_instance_types" {
  description = "Instance types of the managed node group that runs the system pods (Argo CD, controllers, Karpenter)."
  type        = list(string)
}

variable "system_node_min_size" {
  description = "Minimum size of the system node group."
  type        = number
}

variable "system_node_max_size" {
  description = "Maximum size of the system node group."
  type        = number
}

variable "system_node_desired_size" {
  description = "Initial size of the system node group (later changes are ignored by the module)."
  type        = number
}

variable "enable_metrics_server_addon" {
  description = "Install metrics-server as an EKS add-on. Leave false when gitops/ installs it (two installs would fight)."
  type        = bool
  default     = false
}

################################################################################
# PostgreSQL (RDS)
################################################################################

variable "postgres_engine_version" {
  description = "RDS PostgreSQL major version (minor versions are upgraded automatically in the maintenance window)."
  type        = string
  default     = "17"
}

variable "postgres_instance_class" {
  description = "RDS instance class."
  type        = string
}

variable "postgres_allocated_storage" {
  description = "Initial gp3 storage in GiB."
  type        = number
}

variable "postgres_max_allocated_storage" {
  description = "Upper bound of storage autoscaling in GiB."
  type        = number
}

variable "postgres_multi_az" {
  description = "Run a synchronous standby in a second AZ."
  type        = bool
}

variable "postgres_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
}

variable "postgres_skip_final_snapshot" {
  description = "Skip the final snapshot when the instance is destroyed (dev only)."
  type        = bool
}

################################################################################
# Redis (ElastiCache)
################################################################################

variable "redis_engine_version" {
  description = "ElastiCache Redis OSS engine version."
  type        = string
  default     = "7.1"
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
}

variable "redis_cluster_mode_enabled" {
  description = "Redis Cluster mode (sharded; clients must be cluster-aware and connect to the configuration endpoint). Every key of one event shares a hash tag, so the waiting room's Lua scripts work either way."
  type        = bool
  default     = true
}

variable "redis_shards" {
  description = "Number of shards (node groups) when cluster mode is enabled."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_shards >= 1 && var.redis_shards <= 500
    error_message = "redis_shards must be between 1 and 500."
  }
}

variable "redis_replicas_per_shard" {
  description = "Replicas per shard (at least 1: automatic failover needs one)."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_replicas_per_shard >= 1 && var.redis_replicas_per_shard <= 5
    error_message = "redis_replicas_per_shard must be between 1 and 5."
  }
}

variable "redis_snapshot_retention_days" {
  description = "Days of Redis snapshots (0 disables them)."
  type        = number
}

################################################################################
# RabbitMQ (Amazon MQ)
################################################################################

variable "mq_engine_version" {
  description = "Amazon MQ for RabbitMQ engine version."
  type        = string
  default     = "3.13"
}

variable "mq_instance_type" {
  description = "Amazon MQ broker instance type (mq.t3.micro supports single-instance brokers only)."
  type        = string
}

variable "mq_cluster" {
  description = "Three-node cluster across AZs (CLUSTER_MULTI_AZ) instead of a single-instance broker."
  type        = bool
}

################################################################################
# Shared
################################################################################

variable "deletion_protection" {
  description = "Protect the database from deletion and keep final snapshots (prod)."
  type        = bool
}

variable "apply_immediately" {
  description = "Apply data-store modifications at once rather than in the next maintenance window."
  type        = bool
  default     = false
}

variable "secret_recovery_window_days" {
  description = "Days a deleted Secrets Manager secret can be restored (0 deletes at once, so a torn-down dev can be recreated under the same names)."
  type        = number
}

variable "kms_deletion_window_days" {
  description = "Waiting period before a scheduled KMS key deletion takes effect (7-30)."
  type        = number
  default     = 30
}

################################################################################
# Application wiring
################################################################################

variable "ecr_repository_names" {
  description = "ECR repositories of the service images (created once per account by envs/shared)."
  type        = list(string)
  default     = ["flash/gateway", "flash/api", "flash/pay", "flash/web"]
}

variable "ecr_registry_account_id" {
  description = "Account holding the ECR repositories; null means this account."
  type        = string
  default     = null
}

variable "admin_email" {
  description = "E-mail of the bootstrap admin account stored in <project>/<env>/admin; null means admin@<domain_name>."
  type        = string
  default     = null
}

################################################################################
# TLS certificate
################################################################################

variable "domain_name" {
  description = "Host name the ALB serves (the certificate's subject), e.g. tickets.example.com."
  type        = string
}

variable "subject_alternative_names" {
  description = "Extra host names on the certificate (e.g. the Argo CD UI host)."
  type        = list(string)
  default     = []
}

variable "route53_zone_id" {
  description = "Public Route 53 zone to write the DNS validation records to; null leaves them to be created by hand (see the acm_validation_records output)."
  type        = string
  default     = null
}

################################################################################
# Argo CD bootstrap
################################################################################

variable "argocd_bootstrap" {
  description = "Install Argo CD with Helm once the cluster is up (needs the Kubernetes API reachable from where Terraform runs). Argo CD then takes over from argocd/."
  type        = bool
  default     = false
}

variable "argocd_chart_version" {
  description = "Version of the argo-cd Helm chart (https://argoproj.github.io/argo-helm)."
  type        = string
  default     = "9.5.15"
}
