// Package loadgen generates realistic, deterministic synthetic traffic for
// the pipeline — users in sessions seeing Zipf-popular items, clicking at a
// per-placement CTR, and API access logs whose nginx cache hit rate drifts
// over time — and sends it through the HTTP collector or straight to
// Kinesis with the producer library. It feeds `clickstream loadgen`, the
// demo and the end-to-end tests, so every output (vectors, metrics, archive)
// has something worth looking at.
package loadgen

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/clickstream-go/clickstream/event"
)

// Placement is where impressions are shown, with its share of impressions
// and its click-through rate.
type Placement struct {
	Name   string
	Weight float64 // relative share of impressions
	CTR    float64 // probability an impression is followed by a click, in [0,1]
}

// DefaultPlacements are the placements used when GeneratorConfig.Placements is empty.
var DefaultPlacements = []Placement{
	{Name: "home_feed", Weight: 0.50, CTR: 0.04},
	{Name: "search", Weight: 0.20, CTR: 0.12},
	{Name: "related", Weight: 0.20, CTR: 0.07},
	{Name: "push", Weight: 0.10, CTR: 0.02},
}

// Defaults of GeneratorConfig.
const (
	DefaultUsers          = 10_000
	DefaultItems          = 5_000
	DefaultZipfS          = 1.1
	DefaultAccessShare    = 0.3
	DefaultSessions       = 200
	DefaultSessionEvents  = 20
	DefaultHitRate        = 0.80
	DefaultHitRateSwing   = 0.10
	DefaultHitRatePeriod  = 30 * time.Minute
	DefaultDipEvery       = 20 * time.Minute
	DefaultDipDepth       = 0.35
	DefaultLateMax        = 5 * time.Minute
	DefaultMaxClockJitter = 500 * time.Millisecond
)

// GeneratorConfig configures a Generator. Zero fields take their defaults;
// for shares where 0 is a meaningful choice, a negative value means 0.
type GeneratorConfig struct {
	// Seed makes the sequence reproducible: the same seed, config and event
	// times give the same events, ids included. Default 0 (itself a seed).
	Seed uint64
	// Users is the number of distinct users u-0 … u-(Users-1). Default 10,000.
	Users int
	// Items is the number of items a-0 … a-(Items-1); item a-0 is the most
	// popular. Default 5,000.
	Items int
	// ZipfS is the Zipf exponent of item popularity (> 1). Default 1.1.
	ZipfS float64
	// Placements lists where impressions appear and their CTRs.
	// Default DefaultPlacements.
	Placements []Placement
	// AccessShare is the share of access-log events; the rest are
	// impressions and clicks. Default 0.3; negative for none.
	AccessShare float64
	// Sessions is the number of concurrently active user sessions. Default
	// 200 (at most Users).
	Sessions int
	// SessionEvents is the mean number of impressions per session. Default 20.
	SessionEvents int

	// HitRate is the mean nginx cache hit rate of cacheable routes.
	// Default 0.8. The rate at time t is HitRate + HitRateSwing·sin(2πt/HitRatePeriod),
	// lowered by DipDepth during dips, times a per-route factor
	// (see Generator.CacheHitRate).
	HitRate float64
	// HitRateSwing is the amplitude of the slow sine. Default 0.1; negative for none.
	HitRateSwing float64
	// HitRatePeriod is the period of the sine. Default 30 minutes.
	HitRatePeriod time.Duration
	// DipEvery is the mean time between cache dips (a purge: the hit rate
	// drops by DipDepth for DipEvery/10). Which slots have a dip depends on
	// Seed. Default 20 minutes; negative for no dips.
	DipEvery time.Duration
	// DipDepth is how far the hit rate drops during a dip. Default 0.35.
	DipDepth float64

	// LateShare is the share of events whose ts lies between 30 s and LateMax
	// in the past (late arrivals for the metrics' allowed lateness).
	// Default 0.
	LateShare float64
	// LateMax is the largest lateness of a late event. Default 5 minutes.
	LateMax time.Duration

	// Clock gives "now" to Next. Default time.Now. Use NextAt for explicit times.
	Clock func() time.Time
}

func (c GeneratorConfig) withDefaults() (GeneratorConfig, error) {
	if c.Users == 0 {
		c.Users = DefaultUsers
	}
	if c.Items == 0 {
		c.Items = DefaultItems
	}
	if c.Users < 0 || c.Items < 0 {
		return c, errors.New("loadgen config: Users and Items must be positive")
	}
	if c.ZipfS == 0 {
		c.ZipfS = DefaultZipfS
	}
	if c.ZipfS <= 1 {
		return c, fmt.Errorf("loadgen config: ZipfS %g must be > 1", c.ZipfS)
	}
	if len(c.Placements) == 0 {
		c.Placements = DefaultPlacements
	}
	var wsum float64
	for _, p := range c.Placements {
		if p.Name == "" || p.Weight < 0 || p.CTR < 0 || p.CTR > 1 {
			return c, fmt.Errorf("loadgen config: invalid placement %+v (name required, weight ≥ 0, CTR in [0,1])", p)
		}
		wsum += p.Weight
	}
	if wsum <= 0 {
		return c, errors.New("loadgen config: placement weights sum to 0")
	}
	c.AccessShare = share(c.AccessShare, DefaultAccessShare)
	if c.AccessShare > 1 {
		return c, fmt.Errorf("loadgen config: AccessShare %g > 1", c.AccessShare)
	}
	if c.Sessions <= 0 {
		c.Sessions = DefaultSessions
	}
	c.Sessions = min(c.Sessions, c.Users)
	if c.SessionEvents <= 0 {
		c.SessionEvents = DefaultSessionEvents
	}
	if c.HitRate == 0 {
		c.HitRate = DefaultHitRate
	}
	if c.HitRate < 0 || c.HitRate > 1 {
		return c, fmt.Errorf("loadgen config: HitRate %g outside [0,1]", c.HitRate)
	}
	c.HitRateSwing = share(c.HitRateSwing, DefaultHitRateSwing)
	if c.HitRatePeriod <= 0 {
		c.HitRatePeriod = DefaultHitRatePeriod
	}
	if c.DipEvery == 0 {
		c.DipEvery = DefaultDipEvery
	}
	if c.DipDepth == 0 {
		c.DipDepth = DefaultDipDepth
	}
	if c.LateShare < 0 || c.LateShare > 1 {
		return c, fmt.Errorf("loadgen config: LateShare %g outside [0,1]", c.LateShare)
	}
	if c.LateMax <= 0 {
		c.LateMax = DefaultLateMax
	}
	c.LateMax = max(c.LateMax, time.Minute)
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c, nil
}

func share(v, def float64) float64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Generator produces the synthetic event sequence. It is deterministic —
// the same config (Seed included) and the same event times give the same
// events — and not safe for concurrent use.
type Generator struct {
	cfg GeneratorConfig
	r   *rand.Rand // the valid-event sequence
	bad *rand.Rand // malformed events: a separate stream, so BadRate never changes the valid sequence

	items     []item
	itemZipf  *rand.Zipf
	catItems  [][]int // item indices by category, in popularity order
	catZipf   []*rand.Zipf
	users     []user
	sessions  []session
	nextSess  uint64
	placeCum  []float64 // cumulative placement weights
	routeCum  []float64
	ctrByName map[string]float64
}

type item struct {
	id       string
	cat      int
	features map[string]float64
}

type user struct {
	id       string
	fav      [2]uint8 // favourite categories
	app      uint8    // index into apps
	abBucket string
}

type session struct {
	user    int
	id      string
	left    int // impressions left
	lastTS  time.Time
	pending *pendingClick
}

type pendingClick struct {
	item      int
	placement int
	position  int
}

var categories = []struct {
	name string
	tags []string
}{
	{"sports", []string{"soccer", "basketball", "tennis", "f1", "running"}},
	{"news", []string{"politics", "economy", "world", "local", "weather"}},
	{"music", []string{"pop", "rock", "jazz", "hiphop", "classical"}},
	{"tech", []string{"ai", "gadgets", "programming", "security", "space"}},
	{"food", []string{"recipes", "vegan", "baking", "restaurants", "coffee"}},
	{"travel", []string{"beaches", "mountains", "cities", "budget", "roadtrip"}},
	{"fashion", []string{"streetwear", "luxury", "sneakers", "vintage", "beauty"}},
	{"games", []string{"rpg", "shooter", "indie", "esports", "retro"}},
	{"movies", []string{"action", "comedy", "drama", "anime", "documentary"}},
	{"finance", []string{"stocks", "crypto", "saving", "realestate", "startups"}},
	{"health", []string{"fitness", "yoga", "nutrition", "sleep", "mental"}},
	{"science", []string{"physics", "biology", "climate", "history", "math"}},
}

var apps = []struct{ name, userAgent string }{
	{"ios", "Clickstream/4.2.0 (iPhone15,2; iOS 18.1; Scale/3.00)"},
	{"android", "Clickstream/4.2.0 (Linux; Android 15; Pixel 8)"},
	{"web", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"},
}

// NewGenerator builds a generator: the item catalogue (categories, tags,
// popularity) and the user population are derived from Seed.
func NewGenerator(cfg GeneratorConfig) (*Generator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &Generator{
		cfg:       cfg,
		r:         rand.New(rand.NewPCG(cfg.Seed, 0x636c69636b)),
		bad:       rand.New(rand.NewPCG(cfg.Seed, 0x6d616c666f726d)),
		catItems:  make([][]int, len(categories)),
		ctrByName: map[string]float64{},
	}
	// Catalogue and users come from their own stream, so they are the same
	// whatever the rest of the config.
	cr := rand.New(rand.NewPCG(cfg.Seed, 0x636174616c6f67))
	g.items = make([]item, cfg.Items)
	for i := range g.items {
		c := cr.IntN(len(categories))
		f := map[string]float64{"cat:" + categories[c].name: 1}
		tags := categories[c].tags
		for _, t := range cr.Perm(len(tags))[:1+cr.IntN(3)] {
			f["tag:"+tags[t]] = float64(2+cr.IntN(19)) * 0.05 // 0.1 … 1.0
		}
		g.items[i] = item{id: "a-" + strconv.Itoa(i), cat: c, features: f}
		g.catItems[c] = append(g.catItems[c], i)
	}
	g.itemZipf = rand.NewZipf(g.r, cfg.ZipfS, 1, uint64(cfg.Items-1))
	g.catZipf = make([]*rand.Zipf, len(categories))
	for c, idx := range g.catItems {
		if len(idx) > 0 {
			g.catZipf[c] = rand.NewZipf(g.r, cfg.ZipfS, 1, uint64(len(idx)-1))
		}
	}
	g.users = make([]user, cfg.Users)
	for i := range g.users {
		f1 := cr.IntN(len(categories))
		f2 := (f1 + 1 + cr.IntN(len(categories)-1)) % len(categories)
		a := uint8(0)
		switch x := cr.Float64(); {
		case x < 0.4:
			a = 0
		case x < 0.8:
			a = 1
		default:
			a = 2
		}
		g.users[i] = user{id: "u-" + strconv.Itoa(i), fav: [2]uint8{uint8(f1), uint8(f2)}, app: a, abBucket: string(rune('A' + cr.IntN(2)))}
	}
	var cum float64
	for _, p := range cfg.Placements {
		cum += p.Weight
		g.placeCum = append(g.placeCum, cum)
		g.ctrByName[p.Name] = p.CTR
	}
	cum = 0
	for _, rt := range routes {
		cum += rt.weight
		g.routeCum = append(g.routeCum, cum)
	}
	g.sessions = make([]session, cfg.Sessions)
	for i := range g.sessions {
		g.sessions[i] = g.newSession()
	}
	return g, nil
}

// Config returns the generator's configuration with defaults applied.
func (g *Generator) Config() GeneratorConfig { return g.cfg }

// CTR returns the configured click-through rate of a placement.
func (g *Generator) CTR(placement string) float64 { return g.ctrByName[placement] }

func (g *Generator) newSession() session {
	g.nextSess++
	return session{
		user: g.r.IntN(len(g.users)),
		id:   "s-" + strconv.FormatUint(g.cfg.Seed, 36) + "-" + strconv.FormatUint(g.nextSess, 36),
		left: 1 + int(g.r.ExpFloat64()*float64(g.cfg.SessionEvents-1)),
	}
}

// Next returns the next event, stamped with the configured clock's now.
func (g *Generator) Next() event.Event { return g.NextAt(g.cfg.Clock()) }

// NextAt returns the next event as if generated at now. Events are valid
// per the v1 contract and carry an id (a ULID whose time is the event's ts
// and whose entropy comes from Seed). Maps in the event are its own.
func (g *Generator) NextAt(now time.Time) event.Event {
	ts, late := g.eventTime(now)
	if g.r.Float64() < g.cfg.AccessShare {
		return g.access(ts)
	}
	return g.engagement(ts, late)
}

// eventTime is now minus a small client-side delay, or minus a larger
// one for late events; millisecond precision, as the wire format carries.
func (g *Generator) eventTime(now time.Time) (ts time.Time, late bool) {
	d := time.Duration(g.r.Int64N(int64(DefaultMaxClockJitter)))
	if g.cfg.LateShare > 0 && g.r.Float64() < g.cfg.LateShare {
		d = 30*time.Second + time.Duration(g.r.Int64N(int64(g.cfg.LateMax-30*time.Second)))
		late = true
	}
	return now.Add(-d).Truncate(time.Millisecond).UTC(), late
}

func (g *Generator) id(ts time.Time) string {
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(ts))
	var e [10]byte
	a, b := g.r.Uint64(), g.r.Uint32()
	for i := range 8 {
		e[i] = byte(a >> (8 * i))
	}
	e[8], e[9] = byte(b), byte(b>>8)
	_ = u.SetEntropy(e[:])
	return u.String()
}

func (g *Generator) engagement(ts time.Time, late bool) event.Event {
	si := g.r.IntN(len(g.sessions))
	s := &g.sessions[si]
	if !late {
		// Keep a session's on-time events in time order; late ones stay late.
		ts = maxTime(ts, s.lastTS)
		s.lastTS = ts
	}
	u := &g.users[s.user]
	e := event.Event{
		V: 1, ID: g.id(ts), TS: ts,
		UserID: u.id, SessionID: s.id, App: apps[u.app].name,
		Attrs: map[string]string{"ab_bucket": u.abBucket},
	}
	var pos, it, pl int
	if p := s.pending; p != nil {
		e.Type = event.TypeClick
		it, pl, pos = p.item, p.placement, p.position
		s.pending = nil
	} else {
		e.Type = event.TypeImpression
		pl = pick(g.r, g.placeCum)
		it = g.pickItem(u)
		switch g.cfg.Placements[pl].Name {
		case "push":
			pos = 0
		default:
			pos = min(int(g.r.ExpFloat64()*6), 49)
		}
		if g.r.Float64() < g.cfg.Placements[pl].CTR {
			s.pending = &pendingClick{item: it, placement: pl, position: pos}
		}
		s.left--
	}
	e.ItemID = g.items[it].id
	e.Placement = g.cfg.Placements[pl].Name
	e.Position = &pos
	e.Features = maps.Clone(g.items[it].features)
	if s.left <= 0 && s.pending == nil {
		g.sessions[si] = g.newSession()
	}
	return e
}

// pickItem draws half of a user's impressions from their two favourite
// categories, the rest from global popularity, so click vectors differ by user.
func (g *Generator) pickItem(u *user) int {
	if g.r.Float64() < 0.5 {
		c := u.fav[0]
		if g.r.Float64() < 0.4 {
			c = u.fav[1]
		}
		if z := g.catZipf[c]; z != nil {
			return g.catItems[c][z.Uint64()]
		}
	}
	return int(g.itemZipf.Uint64())
}

// pick returns the index drawn from cumulative weights.
func pick(r *rand.Rand, cum []float64) int {
	x := r.Float64() * cum[len(cum)-1]
	for i, c := range cum {
		if x < c {
			return i
		}
	}
	return len(cum) - 1
}

type route struct {
	method, pattern string
	weight          float64
	cacheable       bool
	hitFactor       float64 // multiplies the current base hit rate
	latencyMS       float64 // median latency of a non-HIT
	bytes           float64 // median response size
	status          int     // usual success status
}

var routes = []route{
	{"GET", "/api/items/:id", 0.30, true, 1.00, 35, 4 << 10, 200},
	{"GET", "/api/feed", 0.25, true, 0.75, 60, 12 << 10, 200},
	{"GET", "/api/search", 0.15, true, 0.50, 120, 8 << 10, 200},
	{"GET", "/api/users/:id", 0.10, false, 0, 20, 1 << 10, 200},
	{"POST", "/api/events", 0.10, false, 0, 6, 64, 202},
	{"GET", "/static/*path", 0.10, true, 1.20, 4, 30 << 10, 200},
}

var searchWords = []string{"soccer", "pizza", "jazz", "iphone", "paris", "stocks", "yoga", "anime", "sneakers", "climate"}

// non-HIT cache statuses of cacheable routes, with their relative weights.
var missStatuses = []string{"MISS", "EXPIRED", "STALE", "UPDATING", "REVALIDATED", "BYPASS"}
var missCum = []float64{0.70, 0.88, 0.92, 0.95, 0.98, 1.00}

// BaseHitRate is the cache hit rate of a route with factor 1 at t: the
// configured mean plus the slow sine, minus DipDepth inside a dip.
func (g *Generator) BaseHitRate(t time.Time) float64 {
	p := g.cfg.HitRatePeriod
	phase := 2 * math.Pi * float64(t.UnixNano()%int64(p)) / float64(p)
	h := g.cfg.HitRate + g.cfg.HitRateSwing*math.Sin(phase)
	if g.InDip(t) {
		h -= g.cfg.DipDepth
	}
	return clamp(h, 0, 1)
}

// InDip reports whether t falls inside a cache dip. Time is cut into slots
// of DipEvery/2; a slot has a dip (lasting DipEvery/10 from the slot start)
// with probability 1/2, decided by hashing Seed and the slot number.
func (g *Generator) InDip(t time.Time) bool {
	if g.cfg.DipEvery <= 0 {
		return false
	}
	slot := g.cfg.DipEvery / 2
	k := t.UnixNano() / int64(slot)
	off := time.Duration(t.UnixNano() - k*int64(slot))
	return off < g.cfg.DipEvery/10 && splitmix(g.cfg.Seed^uint64(k))&1 == 0
}

// CacheHitRate is the probability that a request to route is a cache HIT at
// t; 0 for routes that are not cached (their cache status is "-").
func (g *Generator) CacheHitRate(routePattern string, t time.Time) float64 {
	for _, rt := range routes {
		if rt.pattern == routePattern && rt.cacheable {
			return clamp(g.BaseHitRate(t)*rt.hitFactor, 0.01, 0.99)
		}
	}
	return 0
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (g *Generator) access(ts time.Time) event.Event {
	rt := routes[pick(g.r, g.routeCum)]
	e := event.Event{
		V: 1, ID: g.id(ts), Type: event.TypeAccess, TS: ts,
		Host:   "api-" + strconv.Itoa(1+g.r.IntN(4)),
		Method: rt.method, Route: rt.pattern,
	}
	app := g.r.IntN(len(apps))
	if g.r.Float64() < 0.6 { // a signed-in request from an active session
		s := &g.sessions[g.r.IntN(len(g.sessions))]
		e.UserID, e.SessionID = g.users[s.user].id, s.id
		app = int(g.users[s.user].app)
	}
	e.UserAgent = apps[app].userAgent
	switch rt.pattern {
	case "/api/items/:id":
		e.URI = "/api/items/" + g.items[g.itemZipf.Uint64()].id
	case "/api/feed":
		e.URI = "/api/feed?page=" + strconv.Itoa(1+int(g.r.ExpFloat64()*1.5))
	case "/api/search":
		e.URI = "/api/search?q=" + searchWords[g.r.IntN(len(searchWords))]
	case "/api/users/:id":
		e.URI = "/api/users/u-" + strconv.Itoa(g.r.IntN(len(g.users)))
	case "/static/*path":
		e.URI = "/static/js/app." + strconv.FormatUint(g.r.Uint64()%4096, 16) + ".js"
	default:
		e.URI = rt.pattern
	}
	hit := false
	if rt.cacheable {
		if g.r.Float64() < g.CacheHitRate(rt.pattern, ts) {
			e.Cache, hit = "HIT", true
		} else {
			e.Cache = missStatuses[pick(g.r, missCum)]
		}
	} else {
		e.Cache = "-"
	}
	e.Status = g.status(rt, hit, g.InDip(ts))

	// Latency: log-normal around the route's median, with a heavy tail.
	median, sigma := rt.latencyMS, 0.7
	if hit {
		median, sigma = 1.5, 0.5
	}
	lat := median * math.Exp(sigma*g.r.NormFloat64())
	if g.r.Float64() < 0.01 {
		lat *= 5 + 15*g.r.Float64()
	}
	if e.Status == 504 {
		lat = 5000 + 25000*g.r.Float64()
	}
	lat = math.Round(lat*1000) / 1000
	e.RequestTimeMS = &lat

	var size int64
	if e.Status != 304 && e.Status != 204 {
		size = int64(rt.bytes * math.Exp(0.5*g.r.NormFloat64()))
		if e.Status >= 400 {
			size = int64(100 + g.r.IntN(400))
		}
	}
	e.Bytes = &size
	return e
}

// status draws an HTTP status: mostly the route's success code, some 304s
// on cacheable GETs, 4xx, and 5xx that become four times likelier during a
// cache dip (the origin takes the load). HITs never fail upstream.
func (g *Generator) status(rt route, hit, dip bool) int {
	p5 := 0.005
	if dip {
		p5 *= 4
	}
	x := g.r.Float64()
	switch {
	case x < 0.025:
		return []int{404, 404, 404, 400, 401, 429}[g.r.IntN(6)]
	case x < 0.025+p5 && !hit:
		return []int{500, 500, 502, 503, 504}[g.r.IntN(5)]
	case x < 0.06 && rt.method == "GET" && rt.cacheable:
		return 304
	case x < 0.065 && rt.method == "GET":
		return 301
	}
	return rt.status
}

// Malformed returns a deliberately bad event payload (one line, no newline)
// and what is wrong with it: invalid JSON, a missing required field, a
// wrong type, an unparseable ts, or not an object. It draws from its own
// random stream, so mixing malformed events in never changes Next's sequence.
func (g *Generator) Malformed(now time.Time) (data []byte, flaw string) {
	u := "u-" + strconv.Itoa(g.bad.IntN(len(g.users)))
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	switch g.bad.IntN(6) {
	case 0:
		full := `{"v":1,"type":"click","ts":` + ts + `,"user_id":"` + u + `","item_id":"a-1","placement":"home_feed"}`
		return []byte(full[:10+g.bad.IntN(len(full)-12)]), "truncated JSON"
	case 1:
		return []byte(`{"v":1,"type":"click","ts":` + ts + `,"item_id":"a-7","placement":"search"}`), "click without user_id"
	case 2:
		return []byte(`{"v":1,"type":"impression","ts":` + ts + `,"user_id":"` + u + `","item_id":"a-3","position":"third"}`), "position is a string"
	case 3:
		return []byte(`{"v":1,"type":"impression","ts":"yesterday","user_id":"` + u + `","item_id":"a-2"}`), "unparseable ts"
	case 4:
		return []byte(`["click","` + u + `"]`), "not a JSON object"
	default:
		return []byte(`{"v":1,"type":"access","ts":` + ts + `,"route":"/api/feed","status":"OK"}`), "status is a string"
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}
