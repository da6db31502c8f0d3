# VPC across three AZs. Private /19s hold the nodes and (VPC CNI) the pods; the data stores live in
# their own subnets whose route tables have no route out of the VPC.

locals {
  private_subnets     = [for i in range(3) : cidrsubnet(var.vpc_cidr, 3, i)]       # x.x.0.0/19 ...
  public_subnets      = [for i in range(3) : cidrsubnet(var.vpc_cidr, 8, 96 + i)]  # x.x.96.0/24 ...
  database_subnets    = [for i in range(3) : cidrsubnet(var.vpc_cidr, 8, 100 + i)] # x.x.100.0/24 ...
  elasticache_subnets = [for i in range(3) : cidrsubnet(var.vpc_cidr, 8, 104 + i)] # x.x.104.0/24 ...
}

module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "5.21.0"

  name = local.name
  cidr = var.vpc_cidr
  azs  = local.azs

  private_subnets     = local.private_subnets
  public_subnets      = local.public_subnets
  database_subnets    = local.database_subnets
  elasticache_subnets = local.elasticache_subnets

  enable_nat_gateway     = true
  single_nat_gateway     = var.single_nat_gateway
  one_nat_gateway_per_az = !var.single_nat_gateway

  enable_dns_hostnames    = true
  enable_dns_support      = true
  map_public_ip_on_launch = false

  # Data-store subnets: own route tables with only the local route.
  create_database_subnet_group          = true
  database_subnet_group_name            = "${local.name}-database"
  create_database_subnet_route_table    = true
  create_elasticache_subnet_group       = true
  elasticache_subnet_group_name         = "${local.name}-elasticache"
  create_elasticache_subnet_route_table = true

  # Internet-facing ALBs go to public subnets, internal ones and Karpenter's nodes to private ones.
  public_subnet_tags = {
    "kubernetes.io/role/elb" = "1"
  }
  private_subnet_tags = merge(local.discovery_tag, {
    "kubernetes.io/role/internal-elb" = "1"
  })

  # The default security group denies everything; nothing uses it.
  manage_default_security_group = true
  default_security_group_name   = "${local.name}-default-deny"

  enable_flow_log                                 = true
  create_flow_log_cloudwatch_log_group            = true
  create_flow_log_cloudwatch_iam_role             = true
  flow_log_max_aggregation_interval               = 60
  flow_log_cloudwatch_log_group_retention_in_days = var.log_retention_days
  flow_log_cloudwatch_log_group_kms_key_id        = aws_kms_key.data.arn

  tags = local.tags
}

# Image layers from ECR are served by S3: a gateway endpoint keeps that traffic off the NAT
# gateways (free, and the bulk of a node's egress on scale-out).
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = module.vpc.vpc_id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = module.vpc.private_route_table_ids

  tags = merge(local.tags, { Name = "${local.name}-s3" })
}
