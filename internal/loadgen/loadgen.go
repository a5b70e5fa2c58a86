package loadgen

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/driftwatch/driftwatch/schemas"
)

// Header is one Kafka message header of an Event.
type Header struct {
	Key   string
	Value []byte
}

// Event is one message of the stream. Value (and Key, Headers) may be
// shared with other Events — a duplicate re-emits the very same bytes — so
// callers must not modify them.
type Event struct {
	// Kind is the contract the event is meant to follow.
	Kind schemas.Kind
	// Topic is the topic's short name ("inferences"); put the topic prefix
	// in front of it.
	Topic string
	// Key is the Kafka message key: the model id.
	Key []byte
	// Value is the JSON event.
	Value []byte
	// Headers holds the schema header (schemas.SchemaHeader).
	Headers []Header
	// EventID is the event_id the value carries ("" for a malformed event
	// without one).
	EventID string
	// Time is the event time: the timestamp in the value, or for a
	// malformed event the tick it was generated at.
	Time time.Time
	// Duplicate marks a byte-identical re-emission of an earlier event.
	Duplicate bool
	// Malformed is the reason a decoder must reject the event with; empty
	// for a valid one.
	Malformed schemas.Reason
	// Defect names how a malformed event is broken ("truncated",
	// "nan_feature", …); empty for a valid one.
	Defect string
}

// Stats counts what a Generator has emitted so far.
type Stats struct {
	// Ticks is the number of inference ticks (valid, duplicate or malformed
	// inferences).
	Ticks int64 `json:"ticks"`
	// Messages is every event emitted, of every topic.
	Messages int64 `json:"messages"`
	// Topics counts the messages per topic short name.
	Topics map[string]int64 `json:"topics"`
	// Inferences, Outcomes and BusinessMetrics count the unique valid events
	// (each a distinct event_id), duplicates and malformed ones excluded.
	Inferences      int64 `json:"inferences"`
	Outcomes        int64 `json:"outcomes"`
	BusinessMetrics int64 `json:"business_metrics"`
	// Duplicates counts re-emissions per topic short name.
	Duplicates map[string]int64 `json:"duplicates"`
	// Malformed counts malformed events per reason.
	Malformed map[schemas.Reason]int64 `json:"malformed"`
	// First and Last are the earliest and latest event time emitted.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// UniqueValid is the number of distinct valid event ids emitted.
func (s Stats) UniqueValid() int64 { return s.Inferences + s.Outcomes + s.BusinessMetrics }

// DuplicateCount is the number of duplicate messages over all topics.
func (s Stats) DuplicateCount() int64 { return sumValues(s.Duplicates) }

// MalformedCount is the number of malformed messages.
func (s Stats) MalformedCount() int64 { return sumValues(s.Malformed) }

func sumValues[K comparable](m map[K]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

const (
	// sharpness scales the true logit: the production model's score,
	// sigmoid(sharpness·z), is calibrated before drift, and its accuracy is
	// about 0.85.
	sharpness = 4.0
	// ringSize is how many recent events duplicates are drawn from.
	ringSize = 1024
	// newCategoryCount is how many unseen categories NewCategories uses.
	newCategoryCount = 3
)

// model is the hidden state of one simulated model.
type model struct {
	id      string
	key     []byte
	mu, sd  []float64
	w, wAlt []float64 // production weights; an orthogonal alternative
	wTrue   []float64 // current true weights
	bias    float64
	catVals [][]string
	catCum  [][]float64
	catEff  [][]float64
	shift   []float64 // mean shift, in standard deviations
	factor  []float64 // standard deviation factor
	missing []float64 // null probability; numeric features first
	newCat  []float64 // unseen-category probability per categorical feature
	concept float64   // concept drift strength
	// segShift is the mean shift per segment value and numeric feature,
	// in standard deviations (nil until a SegmentShift change);
	// segCum the cumulative shares of the segment values (nil: uniform).
	segShift [][]float64
	segCum   []float64
	// segFlip is the label-flip probability per segment value (nil
	// until a SegmentConcept change).
	segFlip  []float64
	catScale float64 // true model's factor on category effects
	// corrOf is, per numeric feature, the feature it is correlated with
	// (-1: none) and corrRho the correlation (nil until a Correlation
	// change).
	corrOf  []int
	corrRho []float64
	// assocOf is, per categorical feature, the numeric feature it is
	// associated with (-1: none) and assocStr the strength (nil until an
	// Association change).
	assocOf  []int
	assocStr []float64

	correct, total int64     // quality counters of the open bucket
	hist           []float64 // quality of closed buckets, most recent last
	lastQ          float64
}

// draw is one inference before encoding; reused between ticks.
type draw struct {
	m       *model
	num     []float64
	raw     []float64 // each numeric feature's standard normal draw
	numNull []bool
	cat     []string
	catNull []bool
	score   float64
	label   byte
	value   float64
	truthL  byte
	truthV  float64
	correct bool
	latency float64
	region  int
}

// pendingOutcome is an outcome waiting for its label time.
type pendingOutcome struct {
	at     time.Time
	seq    int64
	model  int
	n      int64 // the inference's number
	label  byte
	value  float64
	binary bool
}

type scheduled struct {
	tick int64
	ch   Change
}

// ring keeps the most recent valid events of one topic for duplicates.
type ring struct {
	evs  []Event
	next int
}

func (r *ring) add(ev Event) {
	if len(r.evs) < ringSize {
		r.evs = append(r.evs, ev)
		return
	}
	r.evs[r.next] = ev
	r.next = (r.next + 1) % ringSize
}

func (r *ring) pick(rng *rand.Rand) (Event, bool) {
	if len(r.evs) == 0 {
		return Event{}, false
	}
	ev := r.evs[rng.IntN(len(r.evs))]
	ev.Duplicate = true
	return ev, true
}

// Generator produces the stream a Config describes. It is not safe for
// concurrent use.
type Generator struct {
	cfg     Config
	rng     *rand.Rand
	seedTag string
	models  []*model
	numKeys [][]byte // `"f0":` …
	catKeys [][]byte // `"c0":"` …
	newCats []string
	headers map[schemas.Kind][]Header

	changes    []scheduled
	nextChange int

	tick    int64
	bucket  int64 // open business bucket
	pending []Event
	outq    []pendingOutcome
	outSeq  int64
	infN    int64
	malN    int64
	dupInf  ring
	dupOut  ring
	d       draw
	buf     []byte
	stats   Stats
	ids     []string
	drained bool
}

// New validates cfg and returns its Generator. Zero Start, Step, MaxBytes,
// MaxFeatures, Task, Outcomes.Dist and BusinessMetrics.Metric take their
// defaults; everything else is used as given (start from DefaultConfig).
func New(cfg Config) (*Generator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("load generator configuration: %w", err)
	}
	cfg.Changes = append([]Change(nil), cfg.Changes...)
	g := &Generator{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		seedTag: strconv.FormatUint(cfg.Seed, 36),
		headers: map[schemas.Kind][]Header{},
		stats: Stats{
			Topics:     map[string]int64{},
			Duplicates: map[string]int64{},
			Malformed:  map[schemas.Reason]int64{},
		},
	}
	for _, k := range []schemas.Kind{schemas.KindInference, schemas.KindOutcome, schemas.KindBusinessMetric} {
		g.headers[k] = []Header{{Key: schemas.SchemaHeader, Value: []byte(k.SchemaName())}}
	}
	for i := 0; i < cfg.NumericFeatures; i++ {
		g.numKeys = append(g.numKeys, []byte(`"f`+strconv.Itoa(i)+`":`))
	}
	for i := 0; i < cfg.CategoricalFeatures; i++ {
		g.catKeys = append(g.catKeys, []byte(`"c`+strconv.Itoa(i)+`":`))
	}
	for i := 0; i < newCategoryCount; i++ {
		g.newCats = append(g.newCats, "new_"+strconv.Itoa(i))
	}
	// Model parameters come from their own stream, so they do not depend
	// on anything but the seed and the feature counts.
	prng := rand.New(rand.NewPCG(cfg.Seed^0x5851f42d4c957f2d, cfg.Seed+1))
	for i := 0; i < cfg.Models; i++ {
		g.models = append(g.models, newModel(prng, i, cfg.NumericFeatures, cfg.CategoricalFeatures))
	}
	for _, ch := range cfg.Changes {
		at := ch.AtEvent
		if !ch.AtTime.IsZero() {
			d := ch.AtTime.Sub(cfg.Start)
			at = int64(d / cfg.Step)
			if d%cfg.Step != 0 {
				at++
			}
		}
		g.changes = append(g.changes, scheduled{tick: at, ch: ch})
	}
	sort.SliceStable(g.changes, func(i, j int) bool { return g.changes[i].tick < g.changes[j].tick })
	n, c := cfg.NumericFeatures, cfg.CategoricalFeatures
	g.d = draw{num: make([]float64, n), raw: make([]float64, n), numNull: make([]bool, n), cat: make([]string, c), catNull: make([]bool, c)}
	g.buf = make([]byte, 0, 1024)
	return g, nil
}

func newModel(rng *rand.Rand, idx, n, c int) *model {
	m := &model{
		id: modelID(idx), mu: make([]float64, n), sd: make([]float64, n),
		w: make([]float64, n), wAlt: make([]float64, n), wTrue: make([]float64, n),
		shift: make([]float64, n), factor: make([]float64, n), missing: make([]float64, n+c),
		newCat: make([]float64, c), catScale: 1, bias: 0.2 * rng.NormFloat64(),
	}
	m.key = []byte(m.id)
	for i := 0; i < n; i++ {
		m.mu[i] = 10 * rng.NormFloat64()
		m.sd[i] = 0.5 + 4.5*rng.Float64()
		m.w[i] = rng.NormFloat64() / math.Sqrt(float64(n))
		m.wAlt[i] = rng.NormFloat64()
		m.factor[i] = 1
	}
	// wAlt: orthogonal to w (Gram-Schmidt) and as long, so a full concept
	// drift makes the true logit independent of the production model's.
	var ww, wa float64
	for i := range m.w {
		ww += m.w[i] * m.w[i]
		wa += m.w[i] * m.wAlt[i]
	}
	if ww > 0 {
		var aa float64
		for i := range m.wAlt {
			m.wAlt[i] -= wa / ww * m.w[i]
			aa += m.wAlt[i] * m.wAlt[i]
		}
		if aa > 0 {
			for i := range m.wAlt {
				m.wAlt[i] *= math.Sqrt(ww / aa)
			}
		}
	}
	copy(m.wTrue, m.w)
	for j := 0; j < c; j++ {
		k := 3 + rng.IntN(6)
		vals, cum, eff := make([]string, k), make([]float64, k), make([]float64, k)
		var total float64
		for v := 0; v < k; v++ {
			vals[v] = "v" + strconv.Itoa(v)
			wgt := 1 / float64(v+1) // Zipf-like frequencies
			total += wgt
			cum[v] = total
			eff[v] = 0.5 * rng.NormFloat64() / math.Sqrt(float64(c))
		}
		for v := range cum {
			cum[v] /= total
		}
		m.catVals, m.catCum, m.catEff = append(m.catVals, vals), append(m.catCum, cum), append(m.catEff, eff)
	}
	return m
}

// Config returns the configuration in force, defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// Ticks returns the number of inference ticks so far.
func (g *Generator) Ticks() int64 { return g.tick }

// Stats returns a copy of the counts so far.
func (g *Generator) Stats() Stats {
	s := g.stats
	s.Topics = maps.Clone(s.Topics)
	s.Duplicates = maps.Clone(s.Duplicates)
	s.Malformed = maps.Clone(s.Malformed)
	return s
}

// InferenceIDs returns the event ids of the valid inferences emitted so far,
// in order, when Config.RecordIDs is set (nil otherwise). The slice is the
// Generator's: do not modify it.
func (g *Generator) InferenceIDs() []string { return g.ids }

func (g *Generator) tickTime(k int64) time.Time {
	return g.cfg.Start.Add(time.Duration(k) * g.cfg.Step)
}

// Next returns the next event of the stream, which never ends: the caller
// decides when to stop (for example at Ticks() == n) and may then call
// Drain.
func (g *Generator) Next() Event {
	if g.drained {
		panic("BUG: loadgen: Next after Drain")
	}
	for {
		if len(g.pending) > 0 {
			ev := g.pending[0]
			g.pending = g.pending[1:]
			return g.emit(ev)
		}
		nt := g.tickTime(g.tick)
		if len(g.outq) > 0 && !g.outq[0].at.After(nt) {
			if g.cfg.DuplicateShare > 0 && g.rng.Float64() < g.cfg.DuplicateShare {
				if ev, ok := g.dupOut.pick(g.rng); ok {
					return g.emit(ev)
				}
			}
			return g.emit(g.outcome(g.popOutcome()))
		}
		if g.cfg.BusinessMetrics.Enabled {
			if b := int64(nt.Sub(g.cfg.Start) / g.cfg.BusinessMetrics.Bucket); b > g.bucket {
				for g.bucket < b {
					g.closeBucket()
				}
				continue
			}
		}
		return g.emit(g.tickEvent(nt))
	}
}

// Drain ends the stream: it returns the outcomes still waiting for their
// label time, in label-time order, and the business metrics of the open
// (partial) bucket. Next must not be called after Drain.
func (g *Generator) Drain() []Event {
	if g.drained {
		return nil
	}
	var out []Event
	for _, ev := range g.pending {
		out = append(out, g.emit(ev))
	}
	g.pending = nil
	if g.cfg.BusinessMetrics.Enabled && g.tick > 0 {
		g.closeBucket()
		for _, ev := range g.pending {
			out = append(out, g.emit(ev))
		}
		g.pending = nil
	}
	for len(g.outq) > 0 {
		out = append(out, g.emit(g.outcome(g.popOutcome())))
	}
	g.drained = true
	return out
}

func (g *Generator) emit(ev Event) Event {
	s := &g.stats
	s.Messages++
	s.Topics[ev.Topic]++
	switch {
	case ev.Duplicate:
		s.Duplicates[ev.Topic]++
	case ev.Malformed != "":
		s.Malformed[ev.Malformed]++
	case ev.Kind == schemas.KindInference:
		s.Inferences++
		g.dupInf.add(ev)
		if g.cfg.RecordIDs {
			g.ids = append(g.ids, ev.EventID)
		}
	case ev.Kind == schemas.KindOutcome:
		s.Outcomes++
		g.dupOut.add(ev)
	case ev.Kind == schemas.KindBusinessMetric:
		s.BusinessMetrics++
	}
	if s.First.IsZero() || ev.Time.Before(s.First) {
		s.First = ev.Time
	}
	if ev.Time.After(s.Last) {
		s.Last = ev.Time
	}
	return ev
}

// applyChanges applies the schedule entries due at the current tick.
func (g *Generator) applyChanges() {
	for g.nextChange < len(g.changes) && g.changes[g.nextChange].tick <= g.tick {
		ch := g.changes[g.nextChange].ch
		g.nextChange++
		for i, m := range g.models {
			if ch.Model != "" && ch.Model != modelID(i) {
				continue
			}
			g.apply(m, ch)
		}
	}
}

func (g *Generator) apply(m *model, ch Change) {
	idx := 0
	if ch.Feature != "" {
		idx, _ = strconv.Atoi(ch.Feature[1:])
	}
	switch ch.Kind {
	case MeanShift:
		m.shift[idx] += ch.Value
	case VarianceChange:
		m.factor[idx] *= ch.Value
	case NewCategories:
		m.newCat[idx] = ch.Value
	case Missingness:
		if ch.Feature[0] == 'c' {
			idx += g.cfg.NumericFeatures
		}
		m.missing[idx] = ch.Value
	case SegmentShift:
		r := segmentIndex(ch.Segment)
		if m.segShift == nil {
			m.segShift = make([][]float64, len(SegmentValues))
			for i := range m.segShift {
				m.segShift[i] = make([]float64, len(m.shift))
			}
		}
		m.segShift[r][idx] += ch.Value
	case SegmentMix:
		m.segCum = mixShares(m.segCum, segmentIndex(ch.Segment), ch.Value)
	case SegmentConcept:
		if m.segFlip == nil {
			m.segFlip = make([]float64, len(SegmentValues))
		}
		m.segFlip[segmentIndex(ch.Segment)] = ch.Value
	case Correlation:
		other, _ := strconv.Atoi(ch.Other[1:])
		if m.corrOf == nil {
			m.corrOf, m.corrRho = make([]int, len(m.shift)), make([]float64, len(m.shift))
			for i := range m.corrOf {
				m.corrOf[i] = -1
			}
		}
		m.corrOf[other], m.corrRho[other] = idx, ch.Value
	case Association:
		num, _ := strconv.Atoi(ch.Other[1:])
		if m.assocOf == nil {
			m.assocOf, m.assocStr = make([]int, len(m.newCat)), make([]float64, len(m.newCat))
			for i := range m.assocOf {
				m.assocOf[i] = -1
			}
		}
		m.assocOf[idx], m.assocStr[idx] = num, ch.Value
	case ConceptDrift:
		m.concept = ch.Value
		for i := range m.wTrue {
			m.wTrue[i] = (1-ch.Value)*m.w[i] + ch.Value*m.wAlt[i]
		}
		m.catScale = 1 - ch.Value
	}
}

func (g *Generator) tickEvent(t time.Time) Event {
	g.applyChanges()
	g.tick++
	g.stats.Ticks++
	r := g.rng.Float64()
	switch {
	case r < g.cfg.DuplicateShare:
		if ev, ok := g.dupInf.pick(g.rng); ok {
			return ev
		}
	case r < g.cfg.DuplicateShare+g.cfg.MalformedShare:
		return g.malformed(t)
	}
	return g.inference(t)
}

// mixShares returns the cumulative shares of the segment values after
// value r takes share: the others keep their relative shares (uniform when
// cum is nil) and split 1 − share. When the others had no share left they
// split it evenly.
func mixShares(cum []float64, r int, share float64) []float64 {
	n := len(SegmentValues)
	p := make([]float64, n)
	prev := 0.0
	for i := range p {
		if cum == nil {
			p[i] = 1 / float64(n)
		} else {
			p[i] = cum[i] - prev
			prev = cum[i]
		}
	}
	rest := 1 - p[r]
	for i := range p {
		switch {
		case i == r:
			p[i] = share
		case rest > 0:
			p[i] *= (1 - share) / rest
		default:
			p[i] = (1 - share) / float64(n-1)
		}
	}
	out := make([]float64, n)
	total := 0.0
	for i := range p {
		total += p[i]
		out[i] = total
	}
	out[n-1] = 1
	return out
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// drawInference fills g.d with a fresh inference of a random model.
func (g *Generator) drawInference() *draw {
	d := &g.d
	m := g.models[g.rng.IntN(len(g.models))]
	d.m = m
	rng := g.rng
	// The segment first: a SegmentShift moves features inside it.
	if m.segCum == nil {
		d.region = rng.IntN(len(SegmentValues))
	} else {
		u, r := rng.Float64(), 0
		for r < len(m.segCum)-1 && u >= m.segCum[r] {
			r++
		}
		d.region = r
	}
	var segShift []float64
	if m.segShift != nil {
		segShift = m.segShift[d.region]
	}
	z, zt := m.bias, m.bias
	for i := range d.num {
		if p := m.missing[i]; p > 0 && rng.Float64() < p {
			d.numNull[i] = true
			continue
		}
		d.numNull[i] = false
		shift := m.shift[i]
		if segShift != nil {
			shift += segShift[i]
		}
		e := rng.NormFloat64()
		d.raw[i] = e
		x := m.mu[i] + m.sd[i]*(shift+m.factor[i]*e)
		d.num[i] = x
		s := (x - m.mu[i]) / m.sd[i]
		z += m.w[i] * s
		zt += m.wTrue[i] * s
	}
	// Correlated pairs, after every feature has its own draw (the stream
	// of draws is the same with and without them): Other's standard
	// normal becomes ρ·z + √(1−ρ²)·e, still N(0, 1).
	for i, a := range m.corrOf {
		if a < 0 || d.numNull[i] || d.numNull[a] {
			continue
		}
		shift := m.shift[i]
		if segShift != nil {
			shift += segShift[i]
		}
		rho := m.corrRho[i]
		old := (d.num[i] - m.mu[i]) / m.sd[i]
		x := m.mu[i] + m.sd[i]*(shift+m.factor[i]*(rho*d.raw[a]+math.Sqrt(1-rho*rho)*d.raw[i]))
		d.num[i] = x
		s := (x - m.mu[i]) / m.sd[i]
		z += m.w[i] * (s - old)
		zt += m.wTrue[i] * (s - old)
	}
	nn := len(d.num)
	for j := range d.cat {
		if p := m.missing[nn+j]; p > 0 && rng.Float64() < p {
			d.catNull[j] = true
			continue
		}
		d.catNull[j] = false
		if p := m.newCat[j]; p > 0 && rng.Float64() < p {
			d.cat[j] = g.newCats[rng.IntN(len(g.newCats))]
			continue
		}
		u, cum := rng.Float64(), m.catCum[j]
		if m.assocOf != nil {
			// Φ of the numeric feature's own draw is uniform too, so the
			// category's shares stay; an extra draw only while the
			// association is in force.
			if a := m.assocOf[j]; a >= 0 && !d.numNull[a] && rng.Float64() < math.Abs(m.assocStr[j]) {
				e := d.raw[a]
				if m.assocStr[j] < 0 {
					e = -e
				}
				u = 0.5 * math.Erfc(-e/math.Sqrt2)
			}
		}
		v := 0
		for v < len(cum)-1 && u > cum[v] {
			v++
		}
		d.cat[j] = m.catVals[j][v]
		z += m.catEff[j][v]
		zt += m.catScale * m.catEff[j][v]
	}
	if g.cfg.Task == Binary {
		d.score = sigmoid(sharpness * z)
		d.label = '0'
		if d.score >= 0.5 {
			d.label = '1'
		}
		d.truthL = '0'
		if rng.Float64() < sigmoid(sharpness*zt) {
			d.truthL = '1'
		}
		// The draw only under a SegmentConcept change: other streams
		// stay as they were.
		if m.segFlip != nil && rng.Float64() < m.segFlip[d.region] {
			d.truthL ^= '0' ^ '1'
		}
		d.correct = d.label == d.truthL
	} else {
		d.value = 50 + 10*z
		d.truthV = 50 + 10*zt + rng.NormFloat64()
		if m.segFlip != nil {
			d.truthV += 10 * m.segFlip[d.region]
		}
		d.correct = math.Abs(d.truthV-d.value) <= g.cfg.RegressionTolerance
	}
	d.latency = math.Round((1+rng.ExpFloat64()*4)*100) / 100
	return d
}

// inference draws, encodes and accounts for one valid inference at t.
func (g *Generator) inference(t time.Time) Event {
	d := g.drawInference()
	n := g.infN
	g.infN++
	b := g.appendInference(g.buf[:0], d, n, t)
	g.buf = b
	value := make([]byte, len(b))
	copy(value, b)
	m := d.m
	m.total++
	if d.correct {
		m.correct++
	}
	if g.cfg.Outcomes.Share > 0 && (g.cfg.Outcomes.Share >= 1 || g.rng.Float64() < g.cfg.Outcomes.Share) {
		delay := g.cfg.Outcomes.Delay
		if g.cfg.Outcomes.Dist == Exponential {
			// Whole milliseconds, the precision ClickHouse stores.
			delay = time.Duration(g.rng.ExpFloat64() * float64(delay)).Round(time.Millisecond)
		}
		mi, _ := modelIndex(m.id)
		g.pushOutcome(pendingOutcome{at: t.Add(delay), model: mi, n: n, label: d.truthL, value: d.truthV, binary: g.cfg.Task == Binary})
	}
	// The event id is the bytes after `{"event_id":"` up to the quote.
	const pre = len(`{"event_id":"`)
	idLen := len(g.seedTag) + 2 + digits(n)
	return Event{
		Kind: schemas.KindInference, Topic: schemas.KindInference.Topic(), Key: m.key, Value: value,
		Headers: g.headers[schemas.KindInference], EventID: string(value[pre : pre+idLen]), Time: t,
	}
}

func digits(n int64) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

func (g *Generator) appendID(b []byte, kind byte, n int64) []byte {
	b = append(b, g.seedTag...)
	b = append(b, '-', kind)
	return strconv.AppendInt(b, n, 10)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendInference hand-encodes a valid inference: the hot path, no
// encoding/json and no allocation.
func (g *Generator) appendInference(b []byte, d *draw, n int64, t time.Time) []byte {
	b = append(b, `{"event_id":"`...)
	b = g.appendID(b, 'i', n)
	b = append(b, `","model_id":"`...)
	b = append(b, d.m.id...)
	b = append(b, `","model_version":"1","prediction_id":"`...)
	b = g.appendID(b, 'p', n)
	b = append(b, `","timestamp":`...)
	b = appendTime(b, t)
	b = append(b, `,"features":{`...)
	first := true
	for i, x := range d.num {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, g.numKeys[i]...)
		if d.numNull[i] {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendFloat(b, x, 'g', -1, 64)
		}
	}
	for j, v := range d.cat {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, g.catKeys[j]...)
		if d.catNull[j] {
			b = append(b, "null"...)
		} else {
			b = append(b, '"')
			b = append(b, v...)
			b = append(b, '"')
		}
	}
	b = append(b, `},"prediction":{`...)
	b = g.appendPrediction(b, d)
	b = append(b, `},"segment":{"`+SegmentKey+`":"`...)
	b = append(b, SegmentValues[d.region]...)
	b = append(b, `"},"latency_ms":`...)
	b = strconv.AppendFloat(b, d.latency, 'f', -1, 64)
	return append(b, '}')
}

func (g *Generator) appendPrediction(b []byte, d *draw) []byte {
	if g.cfg.Task == Binary {
		b = append(b, `"label":"`...)
		b = append(b, d.label)
		b = append(b, `","score":`...)
		return strconv.AppendFloat(b, d.score, 'g', -1, 64)
	}
	b = append(b, `"value":`...)
	return strconv.AppendFloat(b, d.value, 'g', -1, 64)
}

func (g *Generator) outcome(p pendingOutcome) Event {
	m := g.models[p.model]
	b := append(g.buf[:0], `{"event_id":"`...)
	b = g.appendID(b, 'o', p.n)
	idEnd := len(b)
	b = append(b, `","model_id":"`...)
	b = append(b, m.id...)
	b = append(b, `","prediction_id":"`...)
	b = g.appendID(b, 'p', p.n)
	b = append(b, `","timestamp":`...)
	b = appendTime(b, p.at)
	if p.binary {
		b = append(b, `,"actual":{"label":"`...)
		b = append(b, p.label, '"', '}', '}')
	} else {
		b = append(b, `,"actual":{"value":`...)
		b = strconv.AppendFloat(b, p.value, 'g', -1, 64)
		b = append(b, '}', '}')
	}
	g.buf = b
	value := append([]byte(nil), b...)
	return Event{
		Kind: schemas.KindOutcome, Topic: schemas.KindOutcome.Topic(), Key: m.key, Value: value,
		Headers: g.headers[schemas.KindOutcome], EventID: string(value[len(`{"event_id":"`):idEnd]), Time: p.at,
	}
}

// closeBucket turns the open bucket's quality counters into one KPI event
// per model (queued in g.pending) and opens the next bucket.
func (g *Generator) closeBucket() {
	bm := g.cfg.BusinessMetrics
	start := g.cfg.Start.Add(time.Duration(g.bucket) * bm.Bucket)
	for i, m := range g.models {
		q := m.lastQ
		if m.total > 0 {
			q = float64(m.correct) / float64(m.total)
		} else if len(m.hist) == 0 {
			q = math.NaN() // filled below from the first bucket with data
		}
		m.correct, m.total = 0, 0
		m.hist = append(m.hist, q)
		if !math.IsNaN(q) {
			m.lastQ = q
		}
		lagged := m.lastQ
		if k := len(m.hist) - 1 - bm.Lag; k >= 0 && !math.IsNaN(m.hist[k]) {
			lagged = m.hist[k]
		}
		if keep := bm.Lag + 1; len(m.hist) > 4*keep+16 {
			m.hist = append(m.hist[:0], m.hist[len(m.hist)-keep:]...)
		}
		v := bm.Base + bm.Slope*lagged + bm.Noise*g.rng.NormFloat64()
		b := append(g.buf[:0], `{"event_id":"`...)
		b = g.appendID(b, 'b', g.bucket)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(i), 10)
		idEnd := len(b)
		b = append(b, `","metric":"`...)
		b = append(b, bm.Metric...)
		b = append(b, `","value":`...)
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
		b = append(b, `,"timestamp":`...)
		b = appendTime(b, start)
		b = append(b, `,"model_id":"`...)
		b = append(b, m.id...)
		b = append(b, `"}`...)
		g.buf = b
		value := append([]byte(nil), b...)
		g.pending = append(g.pending, Event{
			Kind: schemas.KindBusinessMetric, Topic: schemas.KindBusinessMetric.Topic(), Key: m.key, Value: value,
			Headers: g.headers[schemas.KindBusinessMetric], EventID: string(value[len(`{"event_id":"`):idEnd]), Time: start,
		})
	}
	g.bucket++
}

// The outcome queue is a binary min-heap by (label time, sequence), so
// outcomes with equal label times keep their order.

func (p pendingOutcome) less(q pendingOutcome) bool {
	if p.at.Equal(q.at) {
		return p.seq < q.seq
	}
	return p.at.Before(q.at)
}

func (g *Generator) pushOutcome(p pendingOutcome) {
	p.seq = g.outSeq
	g.outSeq++
	h := append(g.outq, p)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].less(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	g.outq = h
}

func (g *Generator) popOutcome() pendingOutcome {
	h := g.outq
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l, r, min := 2*i+1, 2*i+2, i
		if l < len(h) && h[l].less(h[min]) {
			min = l
		}
		if r < len(h) && h[r].less(h[min]) {
			min = r
		}
		if min == i {
			break
		}
		h[i], h[min] = h[min], h[i]
		i = min
	}
	g.outq = h
	return top
}
