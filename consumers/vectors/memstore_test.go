package vectors

import (
	"context"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// memStore is the in-memory store for pure-logic tests. It interprets the
// very requests dynamoStore sends (buildAdd / buildPut) and keeps numbers as
// exact decimals with DynamoDB's rules — at most 38 significant digits,
// magnitude within 1e-130..1e126, an inexact sum is an error, not a rounding
// — so the fixed-point scheme is checked without a server. The contract
// suite (store_contract_test.go) runs the same cases against DynamoDB Local.
type memStore struct {
	mu    sync.Mutex
	items map[string]*memItem
	// hook, when set, runs before every operation (outside the lock, so
	// concurrent calls overlap as they would on a server); a non-nil error is
	// returned instead (fault injection).
	hook  func(op, user string) error
	opsMu sync.Mutex
	ops   map[string]int
}

type memItem struct {
	clicks, imps map[string]dec
	guards       map[string]string
	lm, hl, n, v int64
	hasV         bool
}

func newMemStore() *memStore {
	return &memStore{items: map[string]*memItem{}, ops: map[string]int{}}
}

func (m *memStore) before(op, user string) error {
	m.opsMu.Lock()
	m.ops[op]++
	m.opsMu.Unlock()
	if m.hook != nil {
		return m.hook(op, user)
	}
	return nil
}

func (m *memStore) count(op string) int {
	m.opsMu.Lock()
	defer m.opsMu.Unlock()
	return m.ops[op]
}

func (m *memStore) get(ctx context.Context, user string) (*item, error) {
	if err := m.before("get", user); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshot(user), nil
}

func (m *memStore) snapshot(user string) *item {
	mi, ok := m.items[user]
	if !ok {
		return nil
	}
	it := &item{UserID: user, Landmark: mi.lm, HalfLife: mi.hl, Events: mi.n, Version: mi.v, HasMaps: true,
		Clicks: map[string]float64{}, Imps: map[string]float64{}, Guards: map[string]string{}}
	for k, v := range mi.clicks {
		it.Clicks[k] = v.float()
	}
	for k, v := range mi.imps {
		it.Imps[k] = v.float()
	}
	for k, v := range mi.guards {
		it.Guards[k] = v
	}
	return it
}

func (m *memStore) add(ctx context.Context, r addReq) (*item, error) {
	in, err := buildAdd("mem", r)
	if err != nil {
		return nil, err
	}
	if err := m.before("add", r.user); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mi, ok := m.items[r.user]
	vals := in.ExpressionAttributeValues
	sval := func(k string) string { return vals[k].(*types.AttributeValueMemberS).Value }
	nval := func(k string) int64 {
		n, err := strconv.ParseInt(vals[k].(*types.AttributeValueMemberN).Value, 10, 64)
		if err != nil {
			panic(err)
		}
		return n
	}
	// The condition of buildAdd.
	if !ok || mi.lm != nval(":lm") || mi.hl != nval(":hl") || int64(len(mi.clicks)) > nval(":room") {
		return m.snapshot(r.user), errConflict
	}
	if g, ok := mi.guards[r.shard]; ok && !(g < sval(":first")) {
		return m.snapshot(r.user), errConflict
	}
	// Interpret the update expression on a copy: all or nothing, like DynamoDB.
	expr := *in.UpdateExpression
	setPart, addPart, found := strings.Cut(expr, " ADD ")
	if !found || setPart != "SET #g.#s = :last" {
		return nil, fmt.Errorf("memStore: unexpected expression %q", expr)
	}
	clicks, imps := cloneDecs(mi.clicks), cloneDecs(mi.imps)
	var n int64
	var v int64
	for _, action := range strings.Split(addPart, ", ") {
		path, val, ok := strings.Cut(action, " ")
		if !ok {
			return nil, fmt.Errorf("memStore: bad action %q", action)
		}
		x, err := parseDec(vals[val].(*types.AttributeValueMemberN).Value)
		if err != nil {
			return nil, err
		}
		switch {
		case path == "#n":
			n = nval(val)
		case path == "#v":
			v = nval(val)
		case strings.HasPrefix(path, "#c.") || strings.HasPrefix(path, "#i."):
			dst := clicks
			if path[1] == 'i' {
				dst = imps
			}
			name := in.ExpressionAttributeNames[path[3:]]
			sum := dst[name].add(x)
			if err := sum.check(); err != nil {
				return nil, fmt.Errorf("%w: %v", errNeedRewrite, err)
			}
			dst[name] = sum
		default:
			return nil, fmt.Errorf("memStore: unexpected path %q", path)
		}
	}
	mi.clicks, mi.imps = clicks, imps
	mi.n += n
	mi.v += v
	mi.hasV = true
	mi.guards[r.shard] = sval(":last")
	return nil, nil
}

func (m *memStore) put(ctx context.Context, r putReq) (*item, error) {
	in := buildPut("mem", r)
	if err := m.before("put", r.next.UserID); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	user := r.next.UserID
	mi, ok := m.items[user]
	switch {
	case r.create && ok,
		!r.create && !ok,
		!r.create && r.prevVersion == 0 && mi.hasV,
		!r.create && r.prevVersion != 0 && (!mi.hasV || mi.v != r.prevVersion):
		return m.snapshot(user), errConflict
	}
	vals := in.ExpressionAttributeValues
	next := &memItem{clicks: map[string]dec{}, imps: map[string]dec{}, guards: map[string]string{}, hasV: true}
	for k, av := range vals[":c"].(*types.AttributeValueMemberM).Value {
		d, err := parseDec(av.(*types.AttributeValueMemberN).Value)
		if err != nil {
			return nil, err
		}
		if err := d.check(); err != nil {
			return nil, fmt.Errorf("memStore: put: %v", err)
		}
		next.clicks[k] = d
	}
	for k, av := range vals[":i"].(*types.AttributeValueMemberM).Value {
		d, err := parseDec(av.(*types.AttributeValueMemberN).Value)
		if err != nil {
			return nil, err
		}
		if err := d.check(); err != nil {
			return nil, fmt.Errorf("memStore: put: %v", err)
		}
		next.imps[k] = d
	}
	for k, av := range vals[":g"].(*types.AttributeValueMemberM).Value {
		next.guards[k] = av.(*types.AttributeValueMemberS).Value
	}
	num := func(k string) int64 {
		n, _ := strconv.ParseInt(vals[k].(*types.AttributeValueMemberN).Value, 10, 64)
		return n
	}
	next.lm, next.hl, next.n, next.v = num(":lm"), num(":hl"), num(":n"), num(":v")
	m.items[user] = next
	return nil, nil
}

func cloneDecs(m map[string]dec) map[string]dec {
	out := make(map[string]dec, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// dec is an exact decimal: mant × 10^exp.
type dec struct {
	mant *big.Int
	exp  int
}

func parseDec(s string) (dec, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return dec{}, fmt.Errorf("not a number: %q", s)
	}
	// Find the decimal exponent: scale by 10 until the denominator is 1.
	exp := 0
	ten := big.NewRat(10, 1)
	for !r.IsInt() {
		r.Mul(r, ten)
		exp--
		if exp < -400 {
			return dec{}, fmt.Errorf("not a finite decimal: %q", s)
		}
	}
	return dec{mant: new(big.Int).Set(r.Num()), exp: exp}, nil
}

func (d dec) add(o dec) dec {
	if d.mant == nil {
		return o
	}
	a, b := d, o
	if a.exp > b.exp {
		a, b = b, a
	}
	// Align b to a's exponent.
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(b.exp-a.exp)), nil)
	bm := new(big.Int).Mul(b.mant, scale)
	return dec{mant: new(big.Int).Add(a.mant, bm), exp: a.exp}
}

// check applies DynamoDB's number rules.
func (d dec) check() error {
	if d.mant == nil || d.mant.Sign() == 0 {
		return nil
	}
	digits := new(big.Int).Abs(d.mant).String()
	trimmed := strings.TrimRight(digits, "0")
	if len(trimmed) > 38 {
		return fmt.Errorf("DynamoDB only supports precision up to 38 digits (%d)", len(trimmed))
	}
	mag := len(digits) - 1 + d.exp // exponent of the leading digit
	if mag > 125 {
		return fmt.Errorf("number overflow (1e%d)", mag)
	}
	if mag < -130 {
		return fmt.Errorf("number underflow (1e%d)", mag)
	}
	return nil
}

func (d dec) float() float64 {
	if d.mant == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(d.mant.String()+"e"+strconv.Itoa(d.exp), 64)
	return f
}
