# The read side for services inside AWS: a least-privilege policy for reading
# user vectors straight from the table (consumers/vectors Reader: GetItem,
# BatchGetItem), without the read API's hop. Attach it to the service's role.

resource "aws_iam_policy" "vectors_reader" {
  name        = "${var.name}-vectors-reader"
  description = "Read user vectors from ${aws_dynamodb_table.this["vectors"].name} (GetItem, BatchGetItem) and nothing else"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid      = "ReadUserVectors"
        Effect   = "Allow"
        Action   = ["dynamodb:BatchGetItem", "dynamodb:GetItem"]
        Resource = [aws_dynamodb_table.this["vectors"].arn]
      }],
      local.kms_statements,
    )
  })

  tags = local.tags
}
