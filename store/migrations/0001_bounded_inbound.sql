ALTER TABLE "chats" ALTER COLUMN "version_hlc_counter" SET DATA TYPE bigint;--> statement-breakpoint
ALTER TABLE "events" ALTER COLUMN "hlc_counter" SET DATA TYPE bigint;--> statement-breakpoint
ALTER TABLE "events" ALTER COLUMN "kind" SET DATA TYPE integer;--> statement-breakpoint
ALTER TABLE "pending_events" ADD COLUMN "peer" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "pending_events" ADD COLUMN "bytes" integer DEFAULT 0 NOT NULL;