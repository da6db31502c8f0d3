# EKS with a small on-demand managed node group for the system pods; application capacity comes
# from Karpenter (its AWS side is in karpenter.tf, its NodePools are in gitops/).

locals {
  cluster_admin_access_entries = {
    for arn in var.cluster_admin_role_arns : "admin-${substr(sha1(arn), 0, 8)}" => {
      principal_arn = arn
      policy_associations = {
        admin = {
          policy_arn   = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
          access_scope = { type = "cluster" }
        }
      }
    }
  }

  core_addons = {
    # Before the nodes: they cannot become Ready without the CNI.
    vpc-cni = {
      most_recent    = true
      before_compute = true
      # Enforce the NetworkPolicies gitops/ ships (accepted but ignored otherwise).
      configuration_values = jsonencode({ enableNetworkPolicy = "true" })
    }
    kube-proxy = {
      most_recent = true
    }
    coredns = {
      most_recent = true
    }
    aws-ebs-csi-driver = {
      most_recent              = true
      service_account_role_arn = module.ebs_csi_irsa.iam_role_arn
    }
  }

  optional_addons = var.enable_metrics_server_addon ? {
    metrics-server = {
      most_recent = true
    }
  } : {}
}

module "eks" {
  source  = "terraform-aws-modules/eks/aws"
  version = "20.37.2"

  cluster_name    = local.name
  cluster_version = var.kubernetes_version

  # Stay on standard support: extended support costs six times as much per hour.
  cluster_upgrade_policy = {
    support_type = "STANDARD"
  }

  # Access entries only (no aws-auth ConfigMap). The identity running Terraform is admin; more
  # admins come from cluster_admin_role_arns.
  authentication_mode                      = "API"
  enable_cluster_creator_admin_permissions = true
  access_entries                           = local.cluster_admin_access_entries

  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnets

  cluster_endpoint_private_access      = true
  cluster_endpoint_public_access       = length(var.cluster_endpoint_public_access_cidrs) > 0
  cluster_endpoint_public_access_cidrs = length(var.cluster_endpoint_public_access_cidrs) > 0 ? var.cluster_endpoint_public_access_cidrs : ["0.0.0.0/0"]

  # Kubernetes secrets are envelope-encrypted with a key the module creates.
  kms_key_deletion_window_in_days = var.kms_deletion_window_days

  cluster_enabled_log_types              = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  cloudwatch_log_group_retention_in_days = var.log_retention_days
  cloudwatch_log_group_kms_key_id        = aws_kms_key.data.arn

  # IRSA: the OIDC provider the controllers' roles trust.
  enable_irsa = true

  bootstrap_self_managed_addons = false
  cluster_addons                = merge(local.core_addons, local.optional_addons)

  eks_managed_node_groups = {
    system = {
      ami_type       = "AL2023_x86_64_STANDARD"
      instance_types = var.system_node_instance_types
      capacity_type  = "ON_DEMAND"

      min_size     = var.system_node_min_size
      max_size     = var.system_node_max_size
      desired_size = var.system_node_desired_size

      labels = local.system_node_labels

      # IMDSv2 only, one hop: pods cannot reach the node role's credentials (they use IRSA, which
      # also gives them AWS_REGION), as on Karpenter's nodes (gitops/ EC2NodeClass).
      metadata_options = {
        http_endpoint               = "enabled"
        http_tokens                 = "required"
        http_put_response_hop_limit = 1
      }

      update_config = {
        max_unavailable = 1
      }

      block_device_mappings = {
        xvda = {
          device_name = "/dev/xvda"
          ebs = {
            volume_size           = 50
            volume_type           = "gp3"
            encrypted             = true
            delete_on_termination = true
          }
        }
      }

      # Session Manager instead of SSH: no key pairs, no open port 22.
      iam_role_additional_policies = {
        AmazonSSMManagedInstanceCore = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
      }
    }
  }

  # Karpenter's EC2NodeClass selects this security group (and the private subnets) by tag.
  node_security_group_tags = local.discovery_tag

  tags = local.tags
}
