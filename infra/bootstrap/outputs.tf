output "state_bucket" {
  description = "Bucket name to put in envs/*/backend.hcl."
  value       = aws_s3_bucket.state.bucket
}

output "state_kms_key_arn" {
  description = "KMS key encrypting the state objects."
  value       = aws_kms_key.state.arn
}

output "backend_hcl" {
  description = "Contents of envs/*/backend.hcl."
  value       = "bucket = \"${aws_s3_bucket.state.bucket}\"\n"
}
