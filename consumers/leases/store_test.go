package leases_test

import (
	"testing"

	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
)

func TestMemoryStore_Contract(t *testing.T) {
	runContract(t, func(t *testing.T) leases.Store { return leases.NewMemoryStore() })
}

func TestDynamoStore_Contract(t *testing.T) {
	c := testenv.Clients(t)
	runContract(t, func(t *testing.T) leases.Store {
		return leases.NewDynamoStore(c.DynamoDB, testenv.Table(t, c, setup.LeasesTable))
	})
}
