package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func main() {
	ctx := context.Background()
	cfg, _ := config.LoadDefaultConfig(ctx)
	kc := kinesis.NewFromConfig(cfg)
	name := fmt.Sprintf("efoprobe-%d", time.Now().Unix())
	_, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: &name, ShardCount: aws.Int32(1)})
	must(err)
	for {
		d, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: &name})
		must(err)
		if d.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	d, _ := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: &name})
	arn := d.StreamDescriptionSummary.StreamARN
	for i := 0; i < 5; i++ {
		_, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: &name, PartitionKey: aws.String("k"), Data: []byte(fmt.Sprintf("rec-%d", i))})
		must(err)
	}
	rc, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("probe")})
	must(err)
	fmt.Println("registered", *rc.Consumer.ConsumerARN, rc.Consumer.ConsumerStatus)
	_, err = kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("probe")})
	fmt.Println("register again:", err)
	for {
		dc, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: rc.Consumer.ConsumerARN})
		must(err)
		fmt.Println("status", dc.ConsumerDescription.ConsumerStatus)
		if dc.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	body, _ := json.Marshal(map[string]any{"ConsumerARN": *rc.Consumer.ConsumerARN, "ShardId": "shardId-000000000000", "StartingPosition": map[string]any{"Type": "TRIM_HORIZON"}})
	req, _ := http.NewRequest("POST", os.Getenv("AWS_ENDPOINT_URL_KINESIS"), bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.SubscribeToShard")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20261204/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=abc")
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	must(err)
	fmt.Println("status", resp.Status, resp.Header, resp.Proto)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		fmt.Println(string(b))
		return
	}
	dec := eventstream.NewDecoder()
	br := bufio.NewReader(resp.Body)
	go func() {
		time.Sleep(3 * time.Second)
		kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: &name, PartitionKey: aws.String("k"), Data: []byte("late")})
	}()
	for i := 0; i < 12; i++ {
		msg, err := dec.Decode(br, nil)
		if err != nil {
			fmt.Println("decode:", err, time.Since(t0))
			if err == io.EOF {
				break
			}
			break
		}
		hs := ""
		for _, h := range msg.Headers {
			hs += h.Name + "=" + h.Value.String() + " "
		}
		p := string(msg.Payload)
		if len(p) > 400 {
			p = p[:400]
		}
		fmt.Printf("%v %s\n   %s\n", time.Since(t0).Round(time.Millisecond), hs, p)
	}
	resp.Body.Close()
	_, err = kc.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: rc.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	fmt.Println("sdk subscribe:", err)
	kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: &name, EnforceConsumerDeletion: aws.Bool(true)})
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
