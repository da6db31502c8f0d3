# Karpenter's AWS side: the controller's IRSA role (v1 permissions), the node role its EC2NodeClass
# names, the access entry that lets those nodes join, and the interruption queue fed by EventBridge
# (spot interruption, rebalance, instance state change, scheduled health events).

module "karpenter" {
  source  = "terraform-aws-modules/eks/aws//modules/karpenter"
  version = "20.37.2"

  cluster_name = module.eks.cluster_name

  enable_v1_permissions = true

  # Controller: IRSA for kube-system/karpenter (the service account gitops/ creates).
  enable_irsa                     = true
  irsa_oidc_provider_arn          = module.eks.oidc_provider_arn
  irsa_namespace_service_accounts = ["${local.karpenter_namespace}:${local.karpenter_sa}"]
  enable_pod_identity             = false
  create_pod_identity_association = false

  iam_role_name              = "KarpenterController-${local.name}"
  iam_role_use_name_prefix   = false
  iam_policy_name            = "KarpenterController-${local.name}"
  iam_policy_use_name_prefix = false

  # Nodes: a fixed role name the EC2NodeClass refers to (spec.role).
  node_iam_role_name            = "KarpenterNodeRole-${local.name}"
  node_iam_role_use_name_prefix = false
  node_iam_role_additional_policies = {
    AmazonSSMManagedInstanceCore = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
  }

  queue_name = "Karpenter-${local.name}"

  tags = local.tags
}
