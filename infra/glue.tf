# The archive as an Athena table. Partition projection computes the partitions
# (type × dt × hour) from the table properties, so new hours are queryable the
# moment their first object lands: no crawler, no MSCK REPAIR, no
# partition-count limits.
#
# The columns are those the archive consumer writes (DESIGN.md §4), kept in
# archive-columns.json so the Go schema can be checked against the same file.
# `type` is the partition column only: it is part of the object key.

locals {
  glue_database   = replace(var.name, "-", "_")
  archive_columns = jsondecode(file("${path.module}/archive-columns.json"))
  events_location = "s3://${local.bucket_name}/${local.events_prefix}"
}

resource "aws_glue_catalog_database" "this" {
  count = var.enable_athena ? 1 : 0

  name        = local.glue_database
  description = "Clickstream archive (${var.name})"
  tags        = local.tags
}

resource "aws_glue_catalog_table" "events" {
  count = var.enable_athena ? 1 : 0

  name          = "events"
  database_name = aws_glue_catalog_database.this[0].name
  description   = "Clickstream events archived as Parquet, one row per event"
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    EXTERNAL       = "TRUE"
    classification = "parquet"

    "projection.enabled"          = "true"
    "projection.type.type"        = "enum"
    "projection.type.values"      = join(",", var.archive_event_types)
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = "${var.archive_projection_start_date},NOW"
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
    "projection.hour.type"        = "integer"
    "projection.hour.range"       = "0,23"
    "projection.hour.digits"      = "2"
    "storage.location.template"   = "${local.events_location}type=$${type}/dt=$${dt}/hour=$${hour}/"
  }

  partition_keys {
    name    = "type"
    type    = "string"
    comment = "event type: click, impression, access, or a custom type"
  }
  partition_keys {
    name    = "dt"
    type    = "string"
    comment = "event-time day, UTC, YYYY-MM-DD"
  }
  partition_keys {
    name    = "hour"
    type    = "string"
    comment = "event-time hour, UTC, 00-23"
  }

  storage_descriptor {
    location      = local.events_location
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      name                  = "parquet"
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      parameters            = { "serialization.format" = "1" }
    }

    dynamic "columns" {
      for_each = local.archive_columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment == "" ? null : columns.value.comment
      }
    }
  }
}

resource "aws_athena_workgroup" "this" {
  count = var.enable_athena ? 1 : 0

  name        = var.name
  description = "Queries over the ${var.name} archive; results expire with the bucket's lifecycle"
  # Holds only saved settings and query history, never data.
  force_destroy = true

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    result_configuration {
      output_location = "s3://${local.bucket_name}/${local.athena_results_prefix}"
      encryption_configuration {
        encryption_option = var.kms_key_arn == null ? "SSE_S3" : "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }

  tags = local.tags
}
