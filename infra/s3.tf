# The archive bucket: Parquet under <prefix>events/type=T/dt=YYYY-MM-DD/hour=HH/,
# bad records under <prefix>errors/, Athena results under <prefix>athena-results/
# (DESIGN.md §4). Private, encrypted, TLS only.

locals {
  events_prefix         = "${local.prefix}events/"
  errors_prefix         = "${local.prefix}errors/"
  athena_results_prefix = "${local.prefix}athena-results/"
}

resource "aws_s3_bucket" "archive" {
  bucket        = local.bucket_name
  force_destroy = var.bucket_force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_ownership_controls" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    object_ownership = "BucketOwnerEnforced" # no ACLs: access only through IAM and the bucket policy
  }
}

resource "aws_s3_bucket_public_access_block" "archive" {
  bucket                  = aws_s3_bucket.archive.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # With a customer key, a bucket key cuts KMS requests (and their cost) by
    # orders of magnitude for many small objects.
    bucket_key_enabled = var.kms_key_arn != null
  }
}

# Only created when wanted: a bucket can never return to "unversioned", and
# removing this resource later suspends versioning.
resource "aws_s3_bucket_versioning" "archive" {
  count  = var.bucket_versioning ? 1 : 0
  bucket = aws_s3_bucket.archive.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_policy" "archive" {
  bucket = aws_s3_bucket.archive.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })

  # S3 rejects a policy while the public access block is being changed.
  depends_on = [aws_s3_bucket_public_access_block.archive]
}

resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id

  # Objects under 128 KiB (Lambda batch files before compaction) are never
  # transitioned: IA and Glacier IR bill at least 128 KiB per object and every
  # transition is a request, so small files would cost more there.
  transition_default_minimum_object_size = "all_storage_classes_128K"

  rule {
    id     = "archive-tiering"
    status = "Enabled"
    filter {
      prefix = local.events_prefix
    }
    dynamic "transition" {
      for_each = var.archive_transition_ia_days == null ? [] : [var.archive_transition_ia_days]
      content {
        days          = transition.value
        storage_class = "STANDARD_IA"
      }
    }
    dynamic "transition" {
      for_each = var.archive_transition_glacier_ir_days == null ? [] : [var.archive_transition_glacier_ir_days]
      content {
        days          = transition.value
        storage_class = "GLACIER_IR"
      }
    }
  }

  dynamic "rule" {
    for_each = var.archive_expiration_days == null ? [] : [var.archive_expiration_days]
    content {
      id     = "archive-expiration"
      status = "Enabled"
      filter {
        prefix = local.events_prefix
      }
      expiration {
        days = rule.value
      }
    }
  }

  rule {
    id     = "errors-expiration"
    status = "Enabled"
    filter {
      prefix = local.errors_prefix
    }
    expiration {
      days = var.errors_expiration_days
    }
  }

  rule {
    id     = "athena-results-expiration"
    status = "Enabled"
    filter {
      prefix = local.athena_results_prefix
    }
    expiration {
      days = var.athena_results_expiration_days
    }
  }

  # Uploads interrupted by a crashed or timed-out function leave parts that
  # are billed but invisible; clean them up.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
    dynamic "noncurrent_version_expiration" {
      for_each = var.bucket_versioning ? [var.noncurrent_version_expiration_days] : []
      content {
        noncurrent_days = noncurrent_version_expiration.value
      }
    }
  }

  # Lifecycle rules on a bucket whose versioning is changing are rejected.
  depends_on = [aws_s3_bucket_versioning.archive]
}
