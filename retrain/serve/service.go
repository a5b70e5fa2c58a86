package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/schemas"
)

// RunService runs serve until ctx ends.
func RunService(ctx context.Context, cfg *Config) error {
	secrets := config.SecretValues(cfg)
	return service.Run(ctx, service.Spec{
		Name: "serve", Common: cfg.Common, Migration: cfg.Config, Secrets: secrets,
		Topics: []schemas.Topic{schemas.TopicFor(schemas.TopicInferences), schemas.TopicFor(schemas.TopicOutcomes), schemas.TopicFor(schemas.TopicModelEvents)},
		Setup: func(ctx context.Context, rt *service.Runtime) (func(context.Context) error, error) {
			inf, err := kafkaio.NewWriter(rt.Kafka, schemas.TopicInferences)
			if err != nil {
				return nil, err
			}
			rt.OnClose(inf.Close)
			out, err := kafkaio.NewWriter(rt.Kafka, schemas.TopicOutcomes)
			if err != nil {
				return nil, err
			}
			rt.OnClose(out.Close)
			// A group of its own that never commits: every server sees
			// every promotion, and Kafka forgets the group once it is empty.
			ev, err := kafkaio.NewReader(rt.Kafka, schemas.TopicModelEvents, rt.Kafka.Prefix()+"serve-"+instance())
			if err != nil {
				return nil, err
			}
			rt.OnClose(ev.Close)
			s, err := New(Options{Settings: cfg.Settings, Conn: rt.Conn, Inferences: inf, Outcomes: out, Events: ev,
				InferencesTopic: inf.Topic, OutcomesTopic: out.Topic, ShutdownTimeout: cfg.ShutdownTimeout, Registerer: rt.Server.Registry(), Logger: rt.Log})
			if err != nil {
				return nil, err
			}
			if err := service.WaitFor(ctx, rt.Log, "read the registry", func(ctx context.Context) error { return s.Load(ctx, "") }); err != nil {
				return nil, err
			}
			for p, h := range s.Routes() {
				rt.Server.Handle(p, h)
			}
			rt.Log.Info("serving", "models", s.Versions(), "inferences", inf.Topic, "outcomes", out.Topic)
			return s.Run, nil
		},
	})
}

// instance names this process among servers: host, pid and a random tag.
func instance() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}
