# ---------------------------------------------------------------------------
# Naming and tagging
# ---------------------------------------------------------------------------

variable "name" {
  description = <<-EOT
    Prefix of every resource name: stream "<name>-events", tables
    "<name>-user-vectors", "<name>-metrics", "<name>-leases", functions
    "<name>-archive", "<name>-vectors", "<name>-metrics", "<name>-collector".
    Default "clickstream", which gives the names of DESIGN.md §5. Use one name
    per environment when several share an account ("clickstream-staging").
  EOT
  type        = string
  default     = "clickstream"
  nullable    = false

  validation {
    # 32 characters keeps "<name>-archive-<account id>" within S3's 63 and
    # "<name>-collector-lambda" within IAM's 64.
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "name must be 2-32 characters of a-z, 0-9 and '-', start with a letter and not end with '-'."
  }
}

variable "environment" {
  description = "Environment label, written to the Environment tag of every resource. Default \"prod\"."
  type        = string
  default     = "prod"
  nullable    = false
}

variable "tags" {
  description = "Extra tags for every resource, merged over Project/Environment/ManagedBy. Default {}."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "kms_key_arn" {
  description = <<-EOT
    ARN of a customer managed KMS key for the stream, bucket, tables, dead-letter
    queue, API-key secret and log groups. Default null: AWS managed/owned keys
    everywhere (no key policy to maintain, no KMS request charges beyond S3's).
    When set, every function's role is granted kms:Decrypt and
    kms:GenerateDataKey on this key only, via the services that use it; the key
    policy must also allow CloudWatch Logs (logs.<region>.amazonaws.com).
  EOT
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.kms_key_arn))
    error_message = "kms_key_arn must be a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not an alias."
  }
}

# ---------------------------------------------------------------------------
# Kinesis stream
# ---------------------------------------------------------------------------

variable "shard_count" {
  description = <<-EOT
    Provisioned shard count of the stream. Default null: on-demand capacity
    (scales to 200 MiB/s in without planning; pay per GB). Set a number for
    provisioned mode, which is cheaper at a steady, known rate: one shard takes
    1 MiB/s or 1,000 records/s in (KPL aggregation packs many events per record).
  EOT
  type        = number
  default     = null

  validation {
    condition     = var.shard_count == null || try(var.shard_count >= 1 && floor(var.shard_count) == var.shard_count, false)
    error_message = "shard_count must be null (on-demand) or a whole number >= 1."
  }
}

variable "stream_retention_hours" {
  description = <<-EOT
    How long the stream keeps records, 24-8760 hours. Default 24 (no extra
    charge). Batches that fail past their retries land in the dead-letter queue
    as a shard + sequence range, not the data: they can be replayed from the
    stream only while it still holds them, so raise this (e.g. 168) when nobody
    watches the alarms at night.
  EOT
  type        = number
  default     = 24
  nullable    = false

  validation {
    condition     = var.stream_retention_hours >= 24 && var.stream_retention_hours <= 8760
    error_message = "stream_retention_hours must be between 24 and 8760."
  }
}

variable "shard_level_metrics" {
  description = <<-EOT
    Per-shard CloudWatch metrics of the stream (enhanced monitoring), which show
    a hot partition key or a lagging shard. Each costs as a custom metric per
    shard (about $0.30 a month), so hundreds of shards add up: set [] to rely on
    stream-level metrics. Default ["IncomingBytes", "IteratorAgeMilliseconds",
    "WriteProvisionedThroughputExceeded"].
  EOT
  type        = list(string)
  default     = ["IncomingBytes", "IteratorAgeMilliseconds", "WriteProvisionedThroughputExceeded"]
  nullable    = false
}

# ---------------------------------------------------------------------------
# S3 archive bucket
# ---------------------------------------------------------------------------

variable "bucket_name" {
  description = <<-EOT
    Name of the archive bucket. Default null: "<name>-archive-<account id>"
    (bucket names are global, so DESIGN.md's local default "clickstream-archive"
    would almost certainly be taken on AWS).
  EOT
  type        = string
  default     = null
}

variable "archive_prefix" {
  description = "Key prefix inside the bucket (DESIGN.md's PREFIX): events go to <prefix>/events/, bad records to <prefix>/errors/. Default \"\" (bucket root)."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = !startswith(var.archive_prefix, "/") && !strcontains(var.archive_prefix, "*")
    error_message = "archive_prefix must not start with '/' or contain '*'."
  }
}

variable "bucket_force_destroy" {
  description = "Let terraform destroy delete a non-empty archive bucket, data and all. Default false."
  type        = bool
  default     = false
  nullable    = false
}

variable "bucket_versioning" {
  description = "Keep previous versions of overwritten or deleted objects (protects the archive from mistakes; costs storage for every replayed or compacted object until noncurrent_version_expiration_days). Default false."
  type        = bool
  default     = false
  nullable    = false
}

variable "noncurrent_version_expiration_days" {
  description = "With bucket_versioning, delete previous object versions after this many days. Default 30."
  type        = number
  default     = 30
  nullable    = false
}

variable "archive_transition_ia_days" {
  description = "Move archive objects of 128 KiB or more to S3 Standard-IA after this many days; null disables. Smaller objects are never transitioned: IA bills at least 128 KiB per object and each transition is a request, so small Lambda batch files would cost more there. Default 30."
  type        = number
  default     = 30
}

variable "archive_transition_glacier_ir_days" {
  description = "Move archive objects of 128 KiB or more to S3 Glacier Instant Retrieval (still queryable by Athena, higher read cost) after this many days; null disables. Default 90."
  type        = number
  default     = 90

  validation {
    condition     = var.archive_transition_glacier_ir_days == null || var.archive_transition_ia_days == null || try(var.archive_transition_glacier_ir_days >= var.archive_transition_ia_days + 30, false)
    error_message = "archive_transition_glacier_ir_days must be at least 30 days after archive_transition_ia_days (S3's minimum stay in Standard-IA)."
  }
}

variable "archive_expiration_days" {
  description = "Delete archived events after this many days; null keeps them forever. Default null."
  type        = number
  default     = null
}

variable "errors_expiration_days" {
  description = "Delete dead-lettered bad records (<prefix>/errors/) after this many days. Default 30."
  type        = number
  default     = 30
  nullable    = false
}

# ---------------------------------------------------------------------------
# DynamoDB
# ---------------------------------------------------------------------------

variable "table_deletion_protection" {
  description = "Refuse to delete the DynamoDB tables (set false before terraform destroy). Default true."
  type        = bool
  default     = true
  nullable    = false
}

variable "point_in_time_recovery" {
  description = "Point-in-time recovery (35 days of continuous backups) on every table. Default true."
  type        = bool
  default     = true
  nullable    = false
}

# ---------------------------------------------------------------------------
# Lambda functions
# ---------------------------------------------------------------------------

variable "lambda_dist_dir" {
  description = "Directory holding the function zips lambda-archive.zip, lambda-vectors.zip, lambda-metrics.zip, lambda-collector.zip and lambda-readapi.zip built by `make lambdas`. Default null: <repository>/dist."
  type        = string
  default     = null
}

variable "lambda_architecture" {
  description = "Instruction set of the functions: \"arm64\" (Graviton, ~20% cheaper per GB-second) or \"x86_64\"; must match how `make lambdas` built the zips. Default \"arm64\"."
  type        = string
  default     = "arm64"
  nullable    = false

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "log_level" {
  description = "CLICKSTREAM_LOG_LEVEL of every function: debug, info, warn or error. Default \"info\"."
  type        = string
  default     = "info"
  nullable    = false

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be debug, info, warn or error."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' and the collector API's CloudWatch log groups, in days. Default 30."
  type        = number
  default     = 30
  nullable    = false
}

variable "lambda_environment" {
  description = "Extra environment variables per function, keyed by function (archive, vectors, metrics, collector), merged over the ones this module sets. Default {}."
  type        = map(map(string))
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k in keys(var.lambda_environment) : contains(["archive", "vectors", "metrics", "collector"], k)])
    error_message = "lambda_environment keys must be archive, vectors, metrics or collector."
  }
}

# The three consumers share one settings shape; each variable's optional()
# defaults are tuned to what that consumer does with a batch.

variable "archive" {
  description = <<-EOT
    The archive consumer (events to Parquet in S3). Fields, with defaults:
    enabled (true); memory_mb (1024: Parquet buffers); timeout_seconds (120);
    batch_size (10000, the most Lambda allows; the 6 MB payload limit may cut
    batches first); batching_window_seconds (60: larger objects, at most a
    minute late); parallelization_factor (1: one batch per shard at a time, in
    order; up to 10 for catch-up, giving more, smaller objects);
    maximum_retry_attempts (10); maximum_record_age_seconds (21600 = 6 h);
    bisect_on_error (true); starting_position ("TRIM_HORIZON");
    enhanced_fan_out (false: a dedicated 2 MiB/s per shard read pipe, billed per
    shard-hour); iterator_age_alarm_seconds (900).
  EOT
  type = object({
    enabled                    = optional(bool, true)
    memory_mb                  = optional(number, 1024)
    timeout_seconds            = optional(number, 120)
    batch_size                 = optional(number, 10000)
    batching_window_seconds    = optional(number, 60)
    parallelization_factor     = optional(number, 1)
    maximum_retry_attempts     = optional(number, 10)
    maximum_record_age_seconds = optional(number, 21600)
    bisect_on_error            = optional(bool, true)
    starting_position          = optional(string, "TRIM_HORIZON")
    enhanced_fan_out           = optional(bool, false)
    iterator_age_alarm_seconds = optional(number, 900)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.archive.parallelization_factor >= 1 && var.archive.parallelization_factor <= 10
    error_message = "archive.parallelization_factor must be 1-10."
  }

  validation {
    condition = (var.archive.batch_size >= 1 && var.archive.batch_size <= 10000 &&
      var.archive.batching_window_seconds >= 0 && var.archive.batching_window_seconds <= 300 &&
      var.archive.maximum_retry_attempts >= 0 && var.archive.maximum_retry_attempts <= 10000 &&
      var.archive.maximum_record_age_seconds >= 60 && var.archive.maximum_record_age_seconds <= 604800 &&
      contains(["TRIM_HORIZON", "LATEST"], var.archive.starting_position) &&
      var.archive.memory_mb >= 128 && var.archive.memory_mb <= 10240 &&
    var.archive.timeout_seconds >= 1 && var.archive.timeout_seconds <= 900)
    error_message = "archive: batch_size must be 1-10000, batching_window_seconds 0-300, maximum_retry_attempts 0-10000, maximum_record_age_seconds 60-604800 (never -1: a failing batch must not hold a shard for the stream's whole retention), starting_position TRIM_HORIZON or LATEST, memory_mb 128-10240, timeout_seconds 1-900."
  }
}

variable "vectors" {
  description = <<-EOT
    The user-vectors consumer (DynamoDB, updated within about a second). Fields,
    with defaults: enabled (true); memory_mb (512); timeout_seconds (60);
    batch_size (1000); batching_window_seconds (0: invoke as soon as records
    arrive); parallelization_factor (1, the only accepted value: the per-shard
    sequence guard needs each shard in order); maximum_retry_attempts (10);
    maximum_record_age_seconds (21600); bisect_on_error (true);
    starting_position ("TRIM_HORIZON"); enhanced_fan_out (false; true gives
    ~70 ms propagation instead of up to 1 s polling);
    iterator_age_alarm_seconds (60).
  EOT
  type = object({
    enabled                    = optional(bool, true)
    memory_mb                  = optional(number, 512)
    timeout_seconds            = optional(number, 60)
    batch_size                 = optional(number, 1000)
    batching_window_seconds    = optional(number, 0)
    parallelization_factor     = optional(number, 1)
    maximum_retry_attempts     = optional(number, 10)
    maximum_record_age_seconds = optional(number, 21600)
    bisect_on_error            = optional(bool, true)
    starting_position          = optional(string, "TRIM_HORIZON")
    enhanced_fan_out           = optional(bool, false)
    iterator_age_alarm_seconds = optional(number, 60)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.vectors.parallelization_factor == 1
    error_message = "vectors.parallelization_factor must be 1: the per-shard sequence guard assumes each shard is processed in order."
  }

  validation {
    condition = (var.vectors.batch_size >= 1 && var.vectors.batch_size <= 10000 &&
      var.vectors.batching_window_seconds >= 0 && var.vectors.batching_window_seconds <= 300 &&
      var.vectors.maximum_retry_attempts >= 0 && var.vectors.maximum_retry_attempts <= 10000 &&
      var.vectors.maximum_record_age_seconds >= 60 && var.vectors.maximum_record_age_seconds <= 604800 &&
      contains(["TRIM_HORIZON", "LATEST"], var.vectors.starting_position) &&
      var.vectors.memory_mb >= 128 && var.vectors.memory_mb <= 10240 &&
    var.vectors.timeout_seconds >= 1 && var.vectors.timeout_seconds <= 900)
    error_message = "vectors: batch_size must be 1-10000, batching_window_seconds 0-300, maximum_retry_attempts 0-10000, maximum_record_age_seconds 60-604800 (never -1: a failing batch must not hold a shard for the stream's whole retention), starting_position TRIM_HORIZON or LATEST, memory_mb 128-10240, timeout_seconds 1-900."
  }
}

variable "metrics" {
  description = <<-EOT
    The minute-metrics consumer (per-shard partial aggregates in DynamoDB).
    Fields, with defaults: enabled (true); memory_mb (512); timeout_seconds
    (60); batch_size (5000); batching_window_seconds (10: fewer partial-row
    rewrites, windows published within seconds of closing);
    parallelization_factor (1, the only accepted value: partial rows record
    "complete up to sequence" per shard); maximum_retry_attempts (10);
    maximum_record_age_seconds (21600); bisect_on_error (true);
    starting_position ("TRIM_HORIZON"); enhanced_fan_out (false);
    iterator_age_alarm_seconds (300).
  EOT
  type = object({
    enabled                    = optional(bool, true)
    memory_mb                  = optional(number, 512)
    timeout_seconds            = optional(number, 60)
    batch_size                 = optional(number, 5000)
    batching_window_seconds    = optional(number, 10)
    parallelization_factor     = optional(number, 1)
    maximum_retry_attempts     = optional(number, 10)
    maximum_record_age_seconds = optional(number, 21600)
    bisect_on_error            = optional(bool, true)
    starting_position          = optional(string, "TRIM_HORIZON")
    enhanced_fan_out           = optional(bool, false)
    iterator_age_alarm_seconds = optional(number, 300)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.metrics.parallelization_factor == 1
    error_message = "metrics.parallelization_factor must be 1: per-shard partial rows record how far each shard is complete."
  }

  validation {
    condition = (var.metrics.batch_size >= 1 && var.metrics.batch_size <= 10000 &&
      var.metrics.batching_window_seconds >= 0 && var.metrics.batching_window_seconds <= 300 &&
      var.metrics.maximum_retry_attempts >= 0 && var.metrics.maximum_retry_attempts <= 10000 &&
      var.metrics.maximum_record_age_seconds >= 60 && var.metrics.maximum_record_age_seconds <= 604800 &&
      contains(["TRIM_HORIZON", "LATEST"], var.metrics.starting_position) &&
      var.metrics.memory_mb >= 128 && var.metrics.memory_mb <= 10240 &&
    var.metrics.timeout_seconds >= 1 && var.metrics.timeout_seconds <= 900)
    error_message = "metrics: batch_size must be 1-10000, batching_window_seconds 0-300, maximum_retry_attempts 0-10000, maximum_record_age_seconds 60-604800 (never -1: a failing batch must not hold a shard for the stream's whole retention), starting_position TRIM_HORIZON or LATEST, memory_mb 128-10240, timeout_seconds 1-900."
  }
}

variable "collector" {
  description = <<-EOT
    The HTTP collector (POST /v1/events) on an API Gateway HTTP API. Fields,
    with defaults: enabled (true); memory_mb (256); timeout_seconds (10);
    reserved_concurrency (-1: unreserved; set a cap to protect the account's
    concurrency from a traffic spike); throttling_rate_limit (1000 requests/s
    across the API) and throttling_burst_limit (2000); allowed_origins ([]:
    browser origins allowed to post cross-origin, CLICKSTREAM_ALLOWED_ORIGINS);
    api_keys_secret_arn (null: this module creates the secret
    "<name>/collector-api-keys"; set an existing Secrets Manager secret's ARN to
    manage keys elsewhere).
  EOT
  type = object({
    enabled                = optional(bool, true)
    memory_mb              = optional(number, 256)
    timeout_seconds        = optional(number, 10)
    reserved_concurrency   = optional(number, -1)
    throttling_rate_limit  = optional(number, 1000)
    throttling_burst_limit = optional(number, 2000)
    allowed_origins        = optional(list(string), [])
    api_keys_secret_arn    = optional(string)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.collector.timeout_seconds >= 1 && var.collector.timeout_seconds <= 29
    error_message = "collector.timeout_seconds must be 1-29: API Gateway gives up on an integration after 30 seconds."
  }
}

variable "collector_api_keys" {
  description = <<-EOT
    Bearer keys the collector accepts, stored as a JSON array in the module's
    Secrets Manager secret. Default []: the secret is created empty and you put
    the keys in yourself (`aws secretsmanager put-secret-value --secret-id
    ARN --secret-string '["KEY"]'`), which keeps them out of Terraform state.
    Keys given here are in the state: keep it encrypted.
  EOT
  type        = list(string)
  default     = []
  nullable    = false
  sensitive   = true

  validation {
    condition     = alltrue([for k in var.collector_api_keys : length(k) >= 16])
    error_message = "every collector API key must be at least 16 characters."
  }

  validation {
    condition     = length(var.collector_api_keys) == 0 || var.collector.api_keys_secret_arn == null
    error_message = "collector_api_keys cannot be combined with collector.api_keys_secret_arn: put the keys in that secret instead."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a deleted API-key secret can be restored (0 deletes at once, 7-30 otherwise). Default 7."
  type        = number
  default     = 7
  nullable    = false

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or 7-30."
  }
}

# ---------------------------------------------------------------------------
# Dead letters, analytics, alarms
# ---------------------------------------------------------------------------

variable "dlq_retention_days" {
  description = "How long the dead-letter queue keeps failed-batch notices (shard and sequence range), 1-14 days. Default 14."
  type        = number
  default     = 14
  nullable    = false

  validation {
    condition     = var.dlq_retention_days >= 1 && var.dlq_retention_days <= 14
    error_message = "dlq_retention_days must be 1-14."
  }
}

variable "enable_athena" {
  description = "Create the Glue database and table over the archive (partition projection on type, dt, hour: no crawler) and an Athena workgroup writing results to <prefix>/athena-results/. Default true."
  type        = bool
  default     = true
  nullable    = false
}

variable "archive_event_types" {
  description = "Event types Athena's partition projection enumerates (DESIGN.md §3 types, plus any custom type your apps send: unknown types are archived but only listed types are queryable). Default [\"click\", \"impression\", \"access\"]."
  type        = list(string)
  default     = ["click", "impression", "access"]
  nullable    = false

  validation {
    condition     = length(var.archive_event_types) > 0 && alltrue([for t in var.archive_event_types : !strcontains(t, ",") && !strcontains(t, "/")])
    error_message = "archive_event_types must be non-empty, without ',' or '/' in a type."
  }
}

variable "archive_projection_start_date" {
  description = "First day (YYYY-MM-DD) Athena's dt projection covers; queries without a dt filter scan every day from here. Default \"2025-01-01\"."
  type        = string
  default     = "2025-01-01"
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.archive_projection_start_date))
    error_message = "archive_projection_start_date must be YYYY-MM-DD."
  }
}

variable "athena_results_expiration_days" {
  description = "Delete Athena query results (<prefix>/athena-results/) after this many days. Default 7."
  type        = number
  default     = 7
  nullable    = false
}

variable "enable_alarms" {
  description = "Create CloudWatch alarms (iterator age per consumer, function errors and throttles, dead-letter queue depth, stream write throttling, collector 5xx) and the SNS topic they notify. Default true."
  type        = bool
  default     = true
  nullable    = false
}

variable "enable_dashboard" {
  description = "Create a CloudWatch dashboard \"<name>\" (stream throughput, iterator age, function errors and duration, DLQ depth, collector traffic). Default true."
  type        = bool
  default     = true
  nullable    = false
}

variable "alarm_sns_topic_arn" {
  description = "Send alarms to this existing SNS topic instead of creating \"<name>-alarms\". Default null."
  type        = string
  default     = null
}

variable "alarm_emails" {
  description = "Email addresses subscribed to the alarm topic (each must confirm). Default []."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "alarm_webhook_urls" {
  description = "HTTPS endpoints subscribed to the alarm topic (they must confirm the SNS subscription; Slack needs AWS Chatbot or a small relay). Default []."
  type        = list(string)
  default     = []
  nullable    = false
  sensitive   = true

  validation {
    condition     = alltrue([for u in var.alarm_webhook_urls : startswith(u, "https://")])
    error_message = "alarm_webhook_urls must be https:// URLs."
  }
}

variable "lambda_errors_alarm_threshold" {
  description = "Alarm when a function reports more than this many errors in 5 minutes. Default 0 (any error)."
  type        = number
  default     = 0
  nullable    = false
}

variable "collector_5xx_alarm_threshold" {
  description = "Alarm when the collector API answers more than this many 5xx responses in 5 minutes. Default 10."
  type        = number
  default     = 10
  nullable    = false
}

variable "athena_bytes_scanned_cutoff" {
  description = "Cancel an Athena query in the workgroup once it has scanned this many bytes (Athena bills $5 per TB scanned). Default 1 TiB."
  type        = number
  default     = 1099511627776
  nullable    = false

  validation {
    condition     = var.athena_bytes_scanned_cutoff >= 10485760
    error_message = "athena_bytes_scanned_cutoff must be at least 10 MiB (Athena's minimum)."
  }
}

variable "consume" {
  description = <<-EOT
    Long-running consumers: `clickstream consume` processes you run yourself
    (EC2, ECS, EKS, a VM) instead of, or beside, the Lambda functions. For each
    application listed, an IAM managed policy with exactly what it needs
    (attach it to the role your processes run as: output consume_policy_arns)
    and, with read_mode "efo", its enhanced fan-out stream consumer, named as
    `clickstream consume --read-mode efo` names it (the application's name).
    Fields: applications ([]: none; any of "archive", "vectors", "metrics");
    read_mode ("poll", or "efo": 2 MiB/s per shard for each application and
    records pushed within ~70 ms, billed per consumer-shard-hour and GB).
    Do not run an application both here and as a Lambda function: both would
    apply every event.
  EOT
  type = object({
    applications = optional(list(string), [])
    read_mode    = optional(string, "poll")
  })
  default  = {}
  nullable = false

  validation {
    condition     = contains(["poll", "efo"], var.consume.read_mode)
    error_message = "consume.read_mode must be \"poll\" or \"efo\"."
  }

  validation {
    condition     = alltrue([for a in var.consume.applications : contains(["archive", "vectors", "metrics"], a)])
    error_message = "consume.applications may name archive, vectors and metrics only."
  }
}

variable "read_api" {
  description = <<-EOT
    The read API (GET /v1/users/{id}/vector, GET /v1/metrics..., the
    dashboard) as a Lambda function behind an API Gateway HTTP API, for
    recommendation services and dashboards. Fields, with defaults: enabled
    (true); auth ("keys": bearer keys from Secrets Manager, as the collector;
    "iam": API Gateway checks SigV4 signatures, for services inside AWS that
    call it with their role, which needs execute-api:Invoke: output
    read_api_invoke_policy_arn); memory_mb (256); timeout_seconds (10);
    reserved_concurrency (-1); throttling_rate_limit (500 requests/s) and
    throttling_burst_limit (1000); api_keys_secret_arn (null: this module
    creates "<name>/read-api-keys"; keys mode only).
  EOT
  type = object({
    enabled                = optional(bool, true)
    auth                   = optional(string, "keys")
    memory_mb              = optional(number, 256)
    timeout_seconds        = optional(number, 10)
    reserved_concurrency   = optional(number, -1)
    throttling_rate_limit  = optional(number, 500)
    throttling_burst_limit = optional(number, 1000)
    api_keys_secret_arn    = optional(string)
  })
  default  = {}
  nullable = false

  validation {
    condition     = contains(["keys", "iam"], var.read_api.auth)
    error_message = "read_api.auth must be \"keys\" or \"iam\"."
  }

  validation {
    condition     = var.read_api.timeout_seconds >= 1 && var.read_api.timeout_seconds <= 29
    error_message = "read_api.timeout_seconds must be 1-29: API Gateway gives up on an integration after 30 seconds."
  }
}

variable "read_api_keys" {
  description = <<-EOT
    Bearer keys the read API accepts (read_api.auth = "keys"), stored as a JSON
    array in the module's secret. Default []: the secret is created empty and
    you put the keys in yourself, which keeps them out of Terraform state.
  EOT
  type        = list(string)
  default     = []
  nullable    = false
  sensitive   = true

  validation {
    condition     = alltrue([for k in var.read_api_keys : length(k) >= 16])
    error_message = "every read API key must be at least 16 characters."
  }
}
