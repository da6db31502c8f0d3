# The Secrets Manager entries the ExternalSecrets of gitops/ read (ClusterSecretStore
# aws-secrets-manager). Names are agreed with gitops/: <project>/<env>/<name>.

locals {
  secret_prefix = "${var.project}/${var.environment}"

  # Name -> description. Values are set below; the list is static so for_each never depends on
  # a sensitive value.
  secrets = {
    "database-url"     = "PostgreSQL URL of the api (postgres://...?sslmode=require)"
    "redis-url"        = "Redis URL of the gateway (rediss://, AUTH token)"
    "amqp-url"         = "RabbitMQ URL of api, gateway and pay (amqps://)"
    "api-signing-key"  = "Access-token signing key of the api: Ed25519 PKCS#8 PEM"
    "gate-signing-key" = "Gate-token signing key of the gateway: Ed25519 PKCS#8 PEM"
    "admin"            = "Bootstrap admin account of the api: JSON {email, password}"
    "grafana-admin"    = "Grafana admin login (monitoring): JSON {user, password}"
  }

  # Created without a value: the value is a credential of another system, put by hand
  # (aws secretsmanager put-secret-value, see README) and never read or overwritten by Terraform.
  operator_secrets = {
    "alertmanager" = "Alertmanager receivers: JSON {slack_webhook_url, pagerduty_routing_key, deadmansswitch_url}, set by hand"
  }

  admin_email = coalesce(var.admin_email, "admin@${var.domain_name}")
}

# Token signing keys. The private key lives in the Terraform state (encrypted bucket, restricted
# access) and in Secrets Manager; rotate by replacing the resource (see README).
resource "tls_private_key" "signing" {
  for_each = toset(["api", "gate"])

  algorithm = "ED25519"
}

resource "random_password" "admin" {
  length  = 32
  special = false
}

resource "random_password" "grafana_admin" {
  length  = 32
  special = false
}

locals {
  secret_values = {
    "database-url"     = local.postgres_url
    "redis-url"        = local.redis_url
    "amqp-url"         = local.amqp_url
    "api-signing-key"  = tls_private_key.signing["api"].private_key_pem_pkcs8
    "gate-signing-key" = tls_private_key.signing["gate"].private_key_pem_pkcs8
    "admin"            = jsonencode({ email = local.admin_email, password = random_password.admin.result })
    "grafana-admin"    = jsonencode({ user = "admin", password = random_password.grafana_admin.result })
  }
}

resource "aws_secretsmanager_secret" "this" {
  for_each = local.secrets

  name                    = "${local.secret_prefix}/${each.key}"
  description             = each.value
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = var.secret_recovery_window_days

  tags = local.tags
}

resource "aws_secretsmanager_secret_version" "this" {
  for_each = local.secrets

  secret_id     = aws_secretsmanager_secret.this[each.key].id
  secret_string = local.secret_values[each.key]
}

resource "aws_secretsmanager_secret" "operator" {
  for_each = local.operator_secrets

  name                    = "${local.secret_prefix}/${each.key}"
  description             = each.value
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = var.secret_recovery_window_days

  tags = local.tags
}
