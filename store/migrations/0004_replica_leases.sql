CREATE TABLE "link_leases" (
	"peer_id" text PRIMARY KEY NOT NULL,
	"fence" bigint NOT NULL
);
