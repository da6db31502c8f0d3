# The AWS substrate of one Flash Tickets environment (dev or prod): network, EKS with Karpenter's
# AWS side, the three data stores, their connection secrets and the TLS certificate. The
# environments under envs/ call this module and differ only in its variables.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# The three AZs, named explicitly: the set never grows or reorders when AWS adds a zone, and the
# lookup fails early if one of them is not available in the region.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = [for suffix in var.availability_zone_suffixes : "${data.aws_region.current.name}${suffix}"]
  }
}

locals {
  # flash-dev / flash-prod: the EKS cluster, and the prefix of every other name.
  name = "${var.project}-${var.environment}"

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  dns_suffix = data.aws_partition.current.dns_suffix

  azs = sort(data.aws_availability_zones.selected.names)

  # Names shared with gitops/ and argocd/ (agreed, do not change one side alone).
  app_namespace       = "flash-ticket"
  karpenter_namespace = "kube-system"
  karpenter_sa        = "karpenter"
  lbc_namespace       = "kube-system"
  lbc_sa              = "aws-load-balancer-controller"
  eso_namespace       = "external-secrets"
  eso_sa              = "external-secrets"
  secret_store_name   = "aws-secrets-manager"
  discovery_tag       = { "karpenter.sh/discovery" = local.name }

  # Pods that run on the managed node group (Argo CD, the controllers, Karpenter itself)
  # select it with this label; everything else lands on Karpenter's nodes.
  system_node_labels = { "node-pool" = "system" }

  # Common tags come from the provider's default_tags; var.tags adds any extra ones.
  tags = var.tags
}
