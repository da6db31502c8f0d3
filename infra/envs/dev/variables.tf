variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "repository" {
  description = "Source repository, recorded in every resource's Repository tag."
  type        = string
  default     = "flash-tickets"
}

variable "domain_name" {
  description = "Host name the ALB serves (certificate subject), e.g. tickets.example.com."
  type        = string
}

variable "subject_alternative_names" {
  description = "Extra host names on the certificate (e.g. the Argo CD UI)."
  type        = list(string)
  default     = []
}

variable "route53_zone_id" {
  description = "Public Route 53 zone for the certificate's DNS validation; null to create the records by hand."
  type        = string
  default     = null
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDRs allowed on the public Kubernetes API endpoint; empty keeps the endpoint private."
  type        = list(string)
  default     = []
}

variable "cluster_admin_role_arns" {
  description = "IAM roles granted cluster-admin (e.g. the platform team's SSO role); not the role running Terraform, which is admin already."
  type        = list(string)
  default     = []
}

variable "admin_email" {
  description = "E-mail of the bootstrap admin account; null means admin@<domain_name>."
  type        = string
  default     = null
}

variable "argocd_bootstrap" {
  description = "Install Argo CD with Helm (needs the Kubernetes API reachable from here)."
  type        = bool
  default     = false
}

variable "enable_metrics_server_addon" {
  description = "Install metrics-server as an EKS add-on (leave false when gitops/ installs it)."
  type        = bool
  default     = false
}

variable "redis_cluster_mode_enabled" {
  description = "Run ElastiCache in cluster mode (the gateway's Redis client must then be cluster-aware)."
  type        = bool
  default     = true
}
