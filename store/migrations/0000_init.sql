CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"kind" text NOT NULL,
	"peer" text,
	"code" text,
	"detail" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "chat_servers" (
	"chat_id" text NOT NULL,
	"server_id" text NOT NULL,
	CONSTRAINT "chat_servers_server_id_chat_id_pk" PRIMARY KEY("server_id","chat_id")
);
--> statement-breakpoint
CREATE TABLE "chats" (
	"chat_id" text PRIMARY KEY NOT NULL,
	"members" jsonb NOT NULL,
	"version_hlc_ms" bigint NOT NULL,
	"version_hlc_counter" integer NOT NULL,
	"version_origin" text NOT NULL,
	"version_seq" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "events" (
	"local_seq" bigserial PRIMARY KEY NOT NULL,
	"id" "bytea" NOT NULL,
	"chat_id" text NOT NULL,
	"origin" text NOT NULL,
	"seq" bigint NOT NULL,
	"prev" "bytea" NOT NULL,
	"hlc_ms" bigint NOT NULL,
	"hlc_counter" integer NOT NULL,
	"sender_user" text NOT NULL,
	"sender_device" text NOT NULL,
	"kind" smallint NOT NULL,
	"members" jsonb NOT NULL,
	"body" "bytea" NOT NULL,
	"signature" "bytea",
	CONSTRAINT "events_id_key" UNIQUE("id"),
	CONSTRAINT "events_chain_key" UNIQUE("chat_id","origin","seq")
);
--> statement-breakpoint
CREATE TABLE "link_cursors" (
	"peer_id" text PRIMARY KEY NOT NULL,
	"stored_link_seq" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "peer_keys" (
	"server_id" text PRIMARY KEY NOT NULL,
	"identity_key" "bytea" NOT NULL,
	"pinned_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "pending_events" (
	"chat_id" text NOT NULL,
	"origin" text NOT NULL,
	"seq" bigint NOT NULL,
	"event" "bytea" NOT NULL,
	CONSTRAINT "pending_events_chat_id_origin_seq_pk" PRIMARY KEY("chat_id","origin","seq")
);
--> statement-breakpoint
CREATE INDEX "audit_log_peer" ON "audit_log" USING btree ("peer","id");--> statement-breakpoint
CREATE INDEX "events_canonical_order" ON "events" USING btree ("chat_id","hlc_ms","hlc_counter","origin","seq");