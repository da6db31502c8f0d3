provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "flash-tickets"
      Environment = "dev"
      ManagedBy   = "terraform"
      Repository  = var.repository
    }
  }
}

# Used only when argocd_bootstrap = true; authenticates with the caller's AWS identity.
provider "helm" {
  kubernetes {
    host                   = module.flash.cluster_endpoint
    cluster_ca_certificate = base64decode(module.flash.cluster_certificate_authority_data)

    exec {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.flash.cluster_name, "--region", var.region]
    }
  }
}
