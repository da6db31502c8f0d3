# Optional: install Argo CD once, on the system nodes. From then on Argo CD manages itself and
# everything else from argocd/ and gitops/ (apply the root application, see README).

resource "helm_release" "argocd" {
  count = var.argocd_bootstrap ? 1 : 0

  name             = "argocd"
  namespace        = "argocd"
  create_namespace = true
  repository       = "https://argoproj.github.io/argo-helm"
  chart            = "argo-cd"
  version          = var.argocd_chart_version

  wait    = true
  timeout = 900

  values = [yamlencode({
    global = {
      nodeSelector = local.system_node_labels
    }
  })]

  depends_on = [module.eks]
}
