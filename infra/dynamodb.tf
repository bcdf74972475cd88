# The DynamoDB tables, with the key schemas of internal/setup/setup.go (all key
# attributes are strings). On-demand capacity: consumer Lambdas scale with the
# shard count and need no capacity planning.

locals {
  tables = {
    # One item per (application, shard): lease owner, expiry, checkpoint and
    # processor state of the long-running consumers (and Lambda state, each
    # function confined to its own "app" partition by IAM).
    leases = { name = local.leases_table, hash = "app", range = "shard_id", ttl = null }
    # One item per user.
    vectors = { name = local.vectors_table, hash = "user_id", range = null, ttl = null }
    # pk = metric and dimensions, sk = window start and shard; rows expire
    # through TTL on expires_at (epoch seconds).
    metrics = { name = local.metrics_table, hash = "pk", range = "sk", ttl = "expires_at" }
  }
}

resource "aws_dynamodb_table" "this" {
  for_each = local.tables

  name                        = each.value.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.hash
  range_key                   = each.value.range
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = each.value.hash
    type = "S"
  }

  dynamic "attribute" {
    for_each = each.value.range == null ? [] : [each.value.range]
    content {
      name = attribute.value
      type = "S"
    }
  }

  dynamic "ttl" {
    for_each = each.value.ttl == null ? [] : [each.value.ttl]
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  # Without a customer key DynamoDB encrypts with an AWS owned key (free).
  server_side_encryption {
    enabled     = var.kms_key_arn != null
    kms_key_arn = var.kms_key_arn
  }

  tags = merge(local.tags, { Name = each.value.name })
}
