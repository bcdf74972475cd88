# Test only: a Terraform override file that infra/test.sh merges into the
# module for the moto_server run. It works around what moto (5.2) does not
# model; what it changes is asserted at plan level by tests/*.tftest.hcl.

resource "aws_kinesis_stream" "events" {
  lifecycle {
    # moto ignores the Tags parameter of CreateStream (AWS applies it), so
    # every re-plan would add the tags again.
    ignore_changes = [tags, tags_all]
  }
}

resource "aws_lambda_event_source_mapping" "consumer" {
  # moto maps Lambda only to stream ARNs, not to enhanced fan-out consumer
  # ARNs ("Invalid EventSourceArn"). The consumers are still created.
  event_source_arn = aws_kinesis_stream.events.arn
}
