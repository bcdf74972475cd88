#!/usr/bin/env python3
"""Checks what the moto_server run of infra/test.sh really created, by asking
the emulator (boto3), not Terraform's state.

  check.py kms-key                         create a KMS key, print its ARN
  check.py applied STATE.json OUT.json     every resource exists as configured
  check.py destroyed NAME                  nothing named NAME-... is left

Needs AWS_ENDPOINT_URL pointing at moto_server; exits non-zero with one line
per failed check.
"""

import json
import os
import re
import sys
import glob

import boto3

REGION = "us-east-1"
CONSUMERS = ["archive", "vectors", "metrics"]
FUNCTIONS = CONSUMERS + ["collector"]

failures = []


def client(service):
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def check(ok, message):
    if not ok:
        failures.append(message)


def deployment_types():
    """Resource types the module declares (infra/*.tf)."""
    here = os.path.dirname(os.path.abspath(__file__))
    types = set()
    for path in glob.glob(os.path.join(here, "..", "..", "*.tf")):
        with open(path) as f:
            types |= set(re.findall(r'^resource "([a-z0-9_]+)"', f.read(), re.M))
    return types


def state_resources(state):
    out = []

    def walk(module):
        out.extend(module.get("resources", []))
        for child in module.get("child_modules", []):
            walk(child)

    walk(state["values"]["root_module"])
    return [r for r in out if r["mode"] == "managed"]


def applied(state_path, outputs_path):
    with open(state_path) as f:
        state = json.load(f)
    with open(outputs_path) as f:
        out = {k: v["value"] for k, v in json.load(f).items()}
    resources = state_resources(state)

    # Every resource type of the module was created (moto.tfvars switches
    # the optional ones on).
    created = {r["type"] for r in resources}
    missing = deployment_types() - created
    check(not missing, f"resource types never created: {sorted(missing)}")

    # Every taggable resource carries the deployment's tags. moto drops the
    # stream's (see moto_override.tf); the mock-provider tests cover it.
    for r in resources:
        tags = r["values"].get("tags_all")
        if tags is None or r["type"] == "aws_kinesis_stream":
            continue
        for key in ["Project", "Environment", "Deployment", "ManagedBy"]:
            check(key in tags, f"{r['address']}: tag {key} missing")

    name = "clickstream"
    stream = out["stream_name"]
    kms_key = os.environ["KMS_KEY_ARN"]

    # Kinesis: provisioned, encrypted with the key, fan-out consumer.
    kin = client("kinesis")
    s = kin.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    check(s["StreamModeDetails"]["StreamMode"] == "PROVISIONED" and s["OpenShardCount"] == 2,
          f"stream: {s['StreamModeDetails']} {s['OpenShardCount']} shards")
    check(s["EncryptionType"] == "KMS" and s["KeyId"] == kms_key, f"stream encryption: {s.get('EncryptionType')} {s.get('KeyId')}")
    check(s["RetentionPeriodHours"] == 24, f"stream retention {s['RetentionPeriodHours']}")
    consumers = [c["ConsumerName"] for c in kin.list_stream_consumers(StreamARN=out["stream_arn"])["Consumers"]]
    # The vectors Lambda's, and the long-running metrics application's (var.consume).
    check(sorted(consumers) == sorted([f"{name}-vectors", "metrics"]), f"stream consumers: {consumers}")
    check(set(out["consume_stream_consumers"]) == {"metrics"} and set(out["consume_policy_arns"]) == {"metrics"},
          f"consume outputs: {out['consume_stream_consumers']} {out['consume_policy_arns']}")

    # DynamoDB: key schemas of internal/setup, on-demand, PITR, TTL.
    ddb = client("dynamodb")
    want_keys = {
        "leases": [("app", "HASH"), ("shard_id", "RANGE")],
        "vectors": [("user_id", "HASH")],
        "metrics": [("pk", "HASH"), ("sk", "RANGE")],
    }
    for k, table in out["tables"].items():
        t = ddb.describe_table(TableName=table)["Table"]
        keys = [(e["AttributeName"], e["KeyType"]) for e in t["KeySchema"]]
        check(keys == want_keys[k], f"table {table}: keys {keys}")
        check(all(a["AttributeType"] == "S" for a in t["AttributeDefinitions"]), f"table {table}: non-string key")
        check(t.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", f"table {table}: not on-demand")
        pitr = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        check(pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED", f"table {table}: no PITR")
        ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if k == "metrics":
            check(ttl.get("TimeToLiveStatus") == "ENABLED" and ttl.get("AttributeName") == "expires_at", f"table {table}: TTL {ttl}")
        else:
            check(ttl.get("TimeToLiveStatus") in (None, "DISABLED"), f"table {table}: unexpected TTL {ttl}")

    # S3: private, encrypted with the key, TLS only, lifecycle, versioning.
    s3 = client("s3")
    bucket = out["bucket"]
    enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    check(enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
          and enc["ApplyServerSideEncryptionByDefault"].get("KMSMasterKeyID") == kms_key, f"bucket encryption: {enc}")
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    check(all(pab.values()) and len(pab) == 4, f"public access block: {pab}")
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    check(any(st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for st in policy["Statement"]),
          "bucket policy does not deny plain HTTP")
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    check(set(rules) == {"archive-tiering", "errors-expiration", "athena-results-expiration", "abort-incomplete-uploads"},
          f"lifecycle rules: {sorted(rules)}")
    check(rules.get("errors-expiration", {}).get("Filter", {}).get("Prefix") == "lake/errors/", "errors rule not under the prefix")
    check(s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled", "bucket versioning not enabled")
    own = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0]["ObjectOwnership"]
    check(own == "BucketOwnerEnforced", f"object ownership {own}")

    # Lambda: runtime, architecture, environment, mappings, invoke permission.
    lam = client("lambda")
    dlq_arn = out["dlq_arn"]
    for fn in FUNCTIONS:
        c = lam.get_function_configuration(FunctionName=f"{name}-{fn}")
        check(c["Runtime"] == "provided.al2023" and c["Handler"] == "bootstrap" and c["Architectures"] == ["arm64"],
              f"{fn}: {c['Runtime']} {c['Handler']} {c['Architectures']}")
        env = c.get("Environment", {}).get("Variables", {})
        check(env.get("CLICKSTREAM_STREAM") == stream, f"{fn}: CLICKSTREAM_STREAM={env.get('CLICKSTREAM_STREAM')}")
        if fn in CONSUMERS:
            check(env.get("CLICKSTREAM_PREFIX") == "lake/", f"{fn}: CLICKSTREAM_PREFIX={env.get('CLICKSTREAM_PREFIX')}")
            maps = [m for m in lam.list_event_source_mappings()["EventSourceMappings"]
                    if m["FunctionArn"].endswith(f":function:{name}-{fn}")]  # moto ignores the FunctionName filter
            check(len(maps) == 1, f"{fn}: {len(maps)} event source mappings")
            for m in maps:
                check(m.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], f"{fn}: response types {m.get('FunctionResponseTypes')}")
                check(m.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") == dlq_arn, f"{fn}: on-failure {m.get('DestinationConfig')}")
                check(m.get("BisectBatchOnFunctionError") is True, f"{fn}: no bisect on error")
                check(m.get("MaximumRetryAttempts") == 10 and m.get("MaximumRecordAgeInSeconds") == 21600,
                      f"{fn}: retries {m.get('MaximumRetryAttempts')} age {m.get('MaximumRecordAgeInSeconds')}")
                check(m.get("ParallelizationFactor") == 1 and m.get("StartingPosition") == "TRIM_HORIZON", f"{fn}: order settings")
    coll_env = lam.get_function_configuration(FunctionName=f"{name}-collector")["Environment"]["Variables"]
    check(coll_env.get("CLICKSTREAM_API_KEYS_SECRET_ARN") == out["collector_api_keys_secret_arn"], "collector: secret ARN not in environment")
    check(coll_env.get("CLICKSTREAM_ALLOWED_ORIGINS") == "https://app.example.com", "collector: allowed origins")
    perm = json.loads(lam.get_policy(FunctionName=f"{name}-collector")["Policy"])["Statement"]
    check(len(perm) == 1 and perm[0]["Principal"]["Service"] == "apigateway.amazonaws.com", f"collector invoke permission: {perm}")

    # IAM: one inline policy per role, no wildcard action or resource.
    iam = client("iam")
    for fn in FUNCTIONS + ["readapi"]:
        role = f"{name}-{fn}-lambda"
        doc = iam.get_role_policy(RoleName=role, PolicyName=f"{name}-{fn}")["PolicyDocument"]
        if isinstance(doc, str):
            doc = json.loads(doc)
        for st in doc["Statement"]:
            for a in st["Action"]:
                check("*" not in a, f"{role}: wildcard action {a}")
            for r in st["Resource"]:
                check(r != "*" and r.startswith("arn:"), f"{role}: resource {r}")

    # SQS, Secrets Manager, API Gateway, Glue, Athena, alarms, logs.
    sqs = client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=f"{name}-consumer-dlq")["QueueUrl"],
                                     AttributeNames=["All"])["Attributes"]
    check(attrs.get("MessageRetentionPeriod") == "1209600", f"DLQ retention {attrs.get('MessageRetentionPeriod')}")
    check(attrs.get("KmsMasterKeyId") == kms_key, f"DLQ key {attrs.get('KmsMasterKeyId')}")

    sm = client("secretsmanager")
    keys = json.loads(sm.get_secret_value(SecretId=out["collector_api_keys_secret_arn"])["SecretString"])
    check(keys == ["moto-test-key-0123456789"], "API key secret does not hold the keys as a JSON array")

    apigw = client("apigatewayv2")
    api = [a for a in apigw.get_apis()["Items"] if a["Name"] == f"{name}-collector"]
    check(len(api) == 1, f"collector APIs: {len(api)}")
    if api:
        routes = {r["RouteKey"] for r in apigw.get_routes(ApiId=api[0]["ApiId"])["Items"]}
        check(routes == {"POST /v1/events", "OPTIONS /v1/events", "GET /healthz"}, f"collector routes {routes}")
        integ = apigw.get_integrations(ApiId=api[0]["ApiId"])["Items"]
        check(len(integ) == 1 and integ[0]["PayloadFormatVersion"] == "2.0", f"collector integration {integ}")

    # The read API: its function, API (every route to it, no IAM auth in keys
    # mode), keys secret and URL.
    read_env = lam.get_function_configuration(FunctionName=f"{name}-readapi")["Environment"]["Variables"]
    check(read_env.get("CLICKSTREAM_READ_API_AUTH") == "keys" and read_env.get("CLICKSTREAM_API_KEYS_SECRET_ARN") == out["read_api_keys_secret_arn"]
          and read_env.get("CLICKSTREAM_VECTORS_TABLE") == f"{name}-user-vectors", f"readapi environment {read_env}")
    read_keys = json.loads(sm.get_secret_value(SecretId=out["read_api_keys_secret_arn"])["SecretString"])
    check(read_keys == ["moto-read-key-0123456789"], "read API key secret does not hold the keys as a JSON array")
    api = [a for a in apigw.get_apis()["Items"] if a["Name"] == f"{name}-read"]
    check(len(api) == 1, f"read APIs: {len(api)}")
    if api:
        routes = {(r["RouteKey"], r.get("AuthorizationType", "NONE")) for r in apigw.get_routes(ApiId=api[0]["ApiId"])["Items"]}
        check(routes == {("$default", "NONE")}, f"read API routes {routes}")
    check(bool(out.get("read_api_url")) and out.get("read_api_auth") == "keys", f"read API outputs {out.get('read_api_url')} {out.get('read_api_auth')}")

    glue = client("glue")
    t = glue.get_table(DatabaseName=name, Name="events")["Table"]
    p = t["Parameters"]
    check(p.get("projection.enabled") == "true" and p.get("projection.type.type") == "enum"
          and p.get("projection.dt.type") == "date" and p.get("projection.hour.type") == "integer", f"Glue projection {p}")
    check(p.get("storage.location.template") == f"s3://{bucket}/lake/events/type=${{type}}/dt=${{dt}}/hour=${{hour}}/",
          f"Glue location template {p.get('storage.location.template')}")
    check([k["Name"] for k in t["PartitionKeys"]] == ["type", "dt", "hour"], "Glue partition keys")

    ath = client("athena")
    wg = ath.get_work_group(WorkGroup=name)["WorkGroup"]["Configuration"]["ResultConfiguration"]
    check(wg["OutputLocation"] == f"s3://{bucket}/lake/athena-results/", f"Athena output {wg['OutputLocation']}")

    cw = client("cloudwatch")
    alarms = cw.describe_alarms(AlarmNamePrefix=f"{name}-")["MetricAlarms"]
    n_alarms = sum(1 for r in resources if r["type"] == "aws_cloudwatch_metric_alarm")
    check(len(alarms) == n_alarms and n_alarms >= 17, f"alarms: {len(alarms)} in moto, {n_alarms} in state")
    check(all(a["AlarmActions"] == [out["alarm_topic_arn"]] for a in alarms), "an alarm does not notify the topic")
    check({a["AlarmName"] for a in alarms} >= {f"{name}-{c}-iterator-age" for c in CONSUMERS}, "iterator-age alarms missing")
    check(cw.get_dashboard(DashboardName=name)["DashboardBody"].count("IteratorAge") == 3, "dashboard lacks iterator age")

    sns = client("sns")
    protos = sorted(s["Protocol"] for s in sns.list_subscriptions_by_topic(TopicArn=out["alarm_topic_arn"])["Subscriptions"])
    check(protos == ["email", "https"], f"alarm subscriptions {protos}")

    logs = client("logs")
    groups = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}-")["logGroups"]
    check(len(groups) == len(FUNCTIONS) + 1 and all(g.get("retentionInDays") == 30 for g in groups), f"function log groups {[(g['logGroupName'], g.get('retentionInDays')) for g in groups]}")


def destroyed(name):
    prefix = f"{name}-"
    left = []
    left += [s for s in client("kinesis").list_streams()["StreamNames"] if s.startswith(prefix)]
    left += [t for t in client("dynamodb").list_tables()["TableNames"] if t.startswith(prefix)]
    left += [b["Name"] for b in client("s3").list_buckets().get("Buckets", []) if b["Name"].startswith(prefix)]
    left += [f["FunctionName"] for f in client("lambda").list_functions()["Functions"] if f["FunctionName"].startswith(prefix)]
    left += [m["UUID"] for m in client("lambda").list_event_source_mappings()["EventSourceMappings"]]
    left += [r["RoleName"] for r in client("iam").list_roles()["Roles"] if r["RoleName"].startswith(prefix)]
    left += client("sqs").list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    left += [t["TopicArn"] for t in client("sns").list_topics()["Topics"] if f":{prefix}" in t["TopicArn"]]
    left += [s["Name"] for s in client("secretsmanager").list_secrets()["SecretList"] if s["Name"].startswith(f"{name}/")]
    left += [a["Name"] for a in client("apigatewayv2").get_apis()["Items"] if a["Name"].startswith(prefix)]
    left += [d["Name"] for d in client("glue").get_databases()["DatabaseList"] if d["Name"] == name.replace("-", "_")]
    left += [w["Name"] for w in client("athena").list_work_groups()["WorkGroups"] if w["Name"] == name]
    left += [a["AlarmName"] for a in client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]]
    left += [d["DashboardName"] for d in client("cloudwatch").list_dashboards()["DashboardEntries"] if d["DashboardName"] == name]
    left += [g["logGroupName"] for g in client("logs").describe_log_groups()["logGroups"] if name in g["logGroupName"]]
    check(not left, f"left after destroy: {left}")


def main(argv):
    if argv[1:2] == ["kms-key"]:
        print(client("kms").create_key(Description="infra/test.sh")["KeyMetadata"]["Arn"])
        return 0
    if argv[1:2] == ["applied"] and len(argv) == 4:
        applied(argv[2], argv[3])
    elif argv[1:2] == ["destroyed"] and len(argv) == 3:
        destroyed(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for f in failures:
        print(f"check failed: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
