CREATE TABLE "destination_cursors" (
	"server_id" text PRIMARY KEY NOT NULL,
	"delivered_seq" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "server_records" (
	"server_id" text PRIMARY KEY NOT NULL,
	"record" "bytea" NOT NULL,
	"issued_at_ms" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "chats" ADD COLUMN "routing_policy" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "routing_policy" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "forward_to" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "pending_events" ADD COLUMN "forward_to" jsonb DEFAULT '[]'::jsonb NOT NULL;