output "ecr_repository_urls" {
  description = "Image repository URL of each service."
  value       = { for name, repo in aws_ecr_repository.service : name => repo.repository_url }
}

output "ecr_registry" {
  description = "Registry host (docker login target)."
  value       = split("/", values(aws_ecr_repository.service)[0].repository_url)[0]
}
