package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/schemas"
)

const (
	dialTimeout = 10 * time.Second
	// idleTimeout bounds how long a writer's idle broker connections stay
	// open; kafka.Writer.Close does not close a transport it did not create.
	idleTimeout = 30 * time.Second
	// ensurePoll is how often EnsureTopics re-reads metadata while it waits
	// for new partitions to get a leader.
	ensurePoll = 100 * time.Millisecond
)

// NewWriter returns a writer for the topic called name under opts' prefix
// (NewWriter(opts, "inferences") writes driftwatch.inferences).
//
// Messages with the same key go to the same partition (kafka.Hash), so the
// events of one model stay in order. A write returns once every in-sync
// replica has the batch (RequiredAcks all). Batches close at 1,000 messages,
// 1 MiB or 10 ms, whichever comes first: kafka-go's default of 1 s would make
// every synchronous WriteMessages call wait that long. The topic must exist
// (see EnsureTopics); the writer does not ask the broker to create it.
func NewWriter(opts Options, name string) (*kafka.Writer, error) {
	topic, err := checkTopic(opts, name)
	if err != nil {
		return nil, err
	}
	return &kafka.Writer{
		Addr:         kafka.TCP(opts.Brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   1 << 20,
		BatchTimeout: 10 * time.Millisecond,
		MaxAttempts:  5,
		Compression:  kafka.Lz4,
		Logger:       infoLogger(opts.Logger),
		ErrorLogger:  errorLogger(opts.Logger),
		Transport:    transport(opts),
	}, nil
}

// readerQueue is the most messages a reader holds fetched and not yet
// handed out by FetchMessage.
const readerQueue = 16

// NewReader returns a consumer-group reader of the topic called name under
// opts' prefix.
//
// Offsets are committed only by the caller, with CommitMessages
// (CommitInterval 0): FetchMessage, act, then commit. A group without a
// committed offset starts at the oldest message, so nothing produced before
// the first consumer joined is skipped. Close leaves the group, so another
// member takes over the partitions at once.
func NewReader(opts Options, name, group string) (*kafka.Reader, error) {
	topic, err := checkTopic(opts, name)
	if err != nil {
		return nil, err
	}
	if group == "" {
		return nil, errors.New("new Kafka reader: consumer group is empty")
	}
	cfg := kafka.ReaderConfig{
		Brokers:  opts.Brokers,
		GroupID:  group,
		Topic:    topic,
		Dialer:   &kafka.Dialer{ClientID: opts.clientID(), Timeout: dialTimeout, DualStack: true, SASLMechanism: opts.SASL, TLS: opts.TLS},
		MinBytes: 1,
		MaxBytes: 10 << 20,
		MaxWait:  500 * time.Millisecond,
		// kafka-go's queue of fetched messages (default 100). Callers that
		// read fast keep their own queue, bounded in bytes (ingest); at
		// 1 MiB a message, 100 would hold 100 MiB.
		QueueCapacity:     readerQueue,
		CommitInterval:    0,
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: 3 * time.Second,
		SessionTimeout:    30 * time.Second,
		RebalanceTimeout:  30 * time.Second,
		JoinGroupBackoff:  time.Second,
		ReadBackoffMin:    100 * time.Millisecond,
		ReadBackoffMax:    time.Second,
		IsolationLevel:    kafka.ReadCommitted,
		Logger:            infoLogger(opts.Logger),
		ErrorLogger:       errorLogger(opts.Logger),
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new Kafka reader of %s for group %s: %w", topic, group, err)
	}
	return kafka.NewReader(cfg), nil
}

func checkTopic(opts Options, name string) (string, error) {
	if err := opts.Validate(); err != nil {
		return "", fmt.Errorf("kafka options: %w", err)
	}
	topic := opts.Topic(name)
	if err := ValidateTopicName(topic); err != nil {
		return "", err
	}
	return topic, nil
}

// TopicSpec describes a topic for EnsureTopics. Name is the full topic name,
// prefix included (see Topic and Options.Topic).
type TopicSpec struct {
	Name string
	// Partitions is the number of partitions; 0 takes the broker's
	// num.partitions.
	Partitions int
	// ReplicationFactor is the number of replicas; 0 takes the broker's
	// default.replication.factor.
	ReplicationFactor int
	// Configs are topic-level settings such as "retention.ms".
	Configs map[string]string
}

// EnsureTopics creates the topics that do not exist yet and waits until every
// partition of every listed topic has a leader, so a writer can use them at
// once. Topics that already exist are left as they are, whatever their
// partition count or settings. The request goes to the cluster's controller,
// through opts' brokers, SASL and TLS. ctx bounds the whole call. An error
// saying the cluster refused the credentials or certificate wraps
// ErrRefused.
func EnsureTopics(ctx context.Context, opts Options, topics []TopicSpec) error {
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("ensure Kafka topics: %w", err)
	}
	if len(topics) == 0 {
		return nil
	}
	var errs []error
	req := &kafka.CreateTopicsRequest{}
	names := make([]string, 0, len(topics))
	for _, t := range topics {
		if err := ValidateTopicName(t.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		if t.Partitions < 0 || t.ReplicationFactor < 0 {
			errs = append(errs, fmt.Errorf("topic %s: partitions and replication factor must not be negative", t.Name))
			continue
		}
		cfg := kafka.TopicConfig{
			Topic:             t.Name,
			NumPartitions:     orBrokerDefault(t.Partitions),
			ReplicationFactor: orBrokerDefault(t.ReplicationFactor),
		}
		for k, v := range t.Configs {
			cfg.ConfigEntries = append(cfg.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
		}
		req.Topics = append(req.Topics, cfg)
		names = append(names, t.Name)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ensure Kafka topics: %w", err)
	}

	// CreateTopics reports a refused connection to the controller only as
	// "Broker Not Available"; a metadata request first says what happened.
	if err := Ping(ctx, opts); err != nil {
		return fmt.Errorf("ensure Kafka topics %v: %w", names, err)
	}
	client, closeClient := NewClient(opts)
	defer closeClient()

	res, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create Kafka topics %v: %w", names, refused(err))
	}
	for _, name := range names {
		if err := res.Errors[name]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create Kafka topic %s: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return waitForLeaders(ctx, client, names)
}

// orBrokerDefault maps 0 to -1, which CreateTopics (v4 and later) reads as
// "the broker's default".
func orBrokerDefault(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// waitForLeaders polls metadata until every partition of every topic has a
// leader. A freshly created topic is in the controller's metadata before the
// brokers have loaded its partitions.
func waitForLeaders(ctx context.Context, client *kafka.Client, topics []string) error {
	tick := time.NewTicker(ensurePoll)
	defer tick.Stop()
	for {
		pending, err := topicsWithoutLeaders(ctx, client, topics)
		if err == nil && len(pending) == 0 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("partitions without a leader: %v", pending)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for Kafka topics %v to get partition leaders: %w (last: %v)", topics, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func topicsWithoutLeaders(ctx context.Context, client *kafka.Client, topics []string) ([]string, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	found := make(map[string]bool, len(md.Topics))
	var pending []string
	for _, t := range md.Topics {
		found[t.Name] = true
		if t.Error != nil || len(t.Partitions) == 0 {
			pending = append(pending, t.Name)
			continue
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				pending = append(pending, fmt.Sprintf("%s/%d", t.Name, p.ID))
			}
		}
	}
	for _, name := range topics {
		if !found[name] {
			pending = append(pending, name)
		}
	}
	return pending, nil
}

// Ping asks the cluster for its broker list and succeeds when at least one
// broker is registered: the check behind a service's readiness. It tries the
// bootstrap brokers in order, with opts' SASL and TLS; ctx bounds the whole
// call. An error saying the cluster refused the credentials or certificate
// wraps ErrRefused.
func Ping(ctx context.Context, opts Options) error {
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("ping Kafka: %w", err)
	}
	client, closeClient := NewClient(opts)
	defer closeClient()
	var errs []error
	for _, b := range opts.Brokers {
		// An empty, non-nil topic list asks for no topics, not all of them.
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Addr: kafka.TCP(b), Topics: []string{}})
		if err == nil && len(md.Brokers) > 0 {
			return nil
		}
		if err == nil {
			err = errors.New("the cluster lists no live broker")
		}
		errs = append(errs, fmt.Errorf("%s: %w", b, refused(err)))
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("ping Kafka: %w", errors.Join(errs...))
}

// NewClient returns an admin client of opts' brokers (its Addr the
// bootstrap list) with opts' client id, SASL and TLS, and the function that
// closes its idle connections.
func NewClient(opts Options) (*kafka.Client, func()) {
	tr := transport(opts)
	return &kafka.Client{Addr: kafka.TCP(opts.Brokers...), Transport: tr}, tr.CloseIdleConnections
}

func transport(opts Options) *kafka.Transport {
	return &kafka.Transport{
		ClientID:    opts.clientID(),
		DialTimeout: dialTimeout,
		IdleTimeout: idleTimeout,
		SASL:        opts.SASL,
		TLS:         opts.TLS,
	}
}

func infoLogger(l *slog.Logger) kafka.Logger {
	if l == nil {
		return nil
	}
	return kafka.LoggerFunc(func(format string, args ...any) {
		l.Debug(fmt.Sprintf(format, args...), "component", "kafka-go")
	})
}

func errorLogger(l *slog.Logger) kafka.Logger {
	if l == nil {
		return nil
	}
	th := newThrottle(l, time.Now, throttleWindow)
	return kafka.LoggerFunc(func(format string, args ...any) {
		th.warn(fmt.Sprintf(format, args...))
	})
}

// Specs turns topics of the topology (schemas.Topology) into the specs
// EnsureTopics creates, under o's topic prefix, with their partitions,
// retention and maximum message size, and o's replication factor and
// min.insync.replicas (each left to the brokers' default when 0).
func Specs(o Options, topics ...schemas.Topic) []TopicSpec {
	out := make([]TopicSpec, len(topics))
	for i, t := range topics {
		out[i] = TopicSpec{Name: o.Topic(t.Name), Partitions: t.Partitions, ReplicationFactor: o.ReplicationFactor, Configs: map[string]string{
			"retention.ms":      strconv.FormatInt(t.Retention.Milliseconds(), 10),
			"max.message.bytes": strconv.Itoa(t.MaxMessageBytes),
		}}
		if o.MinInsyncReplicas > 0 {
			out[i].Configs["min.insync.replicas"] = strconv.Itoa(o.MinInsyncReplicas)
		}
	}
	return out
}
