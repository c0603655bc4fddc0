--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: mls; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA mls;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: device_list_entries; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.device_list_entries (
    user_id text NOT NULL,
    "position" integer NOT NULL,
    entry bytea NOT NULL
);


--
-- Name: fetch_cursors; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.fetch_cursors (
    group_id text NOT NULL,
    client_id text NOT NULL,
    seq bigint NOT NULL
);


--
-- Name: group_public_state; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.group_public_state (
    group_id text NOT NULL,
    epoch bigint NOT NULL,
    state bytea NOT NULL,
    group_info bytea
);


--
-- Name: groups; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.groups (
    group_id text NOT NULL,
    epoch bigint NOT NULL,
    last_seq bigint NOT NULL,
    roster jsonb NOT NULL,
    access jsonb NOT NULL,
    log_retained_from bigint DEFAULT 1 NOT NULL
);


--
-- Name: identities; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.identities (
    client_id text NOT NULL,
    user_id text NOT NULL,
    device_id text NOT NULL,
    signature_public_key bytea NOT NULL,
    ciphersuite text NOT NULL,
    registered_at bigint NOT NULL
);


--
-- Name: key_packages; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.key_packages (
    id bigint NOT NULL,
    ref text NOT NULL,
    client_id text NOT NULL,
    key_package bytea NOT NULL,
    not_after bigint NOT NULL
);


--
-- Name: key_packages_id_seq; Type: SEQUENCE; Schema: mls; Owner: -
--

CREATE SEQUENCE mls.key_packages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: key_packages_id_seq; Type: SEQUENCE OWNED BY; Schema: mls; Owner: -
--

ALTER SEQUENCE mls.key_packages_id_seq OWNED BY mls.key_packages.id;


--
-- Name: known_key_package_refs; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.known_key_package_refs (
    ref text NOT NULL
);


--
-- Name: last_resort_key_packages; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.last_resort_key_packages (
    client_id text NOT NULL,
    ref text NOT NULL,
    key_package bytea NOT NULL,
    not_after bigint NOT NULL
);


--
-- Name: log_entries; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.log_entries (
    group_id text NOT NULL,
    seq bigint NOT NULL,
    kind text NOT NULL,
    epoch bigint NOT NULL,
    sender text NOT NULL,
    message bytea NOT NULL,
    digest text NOT NULL,
    appended_at bigint DEFAULT ((EXTRACT(epoch FROM clock_timestamp()) * (1000)::numeric))::bigint NOT NULL,
    CONSTRAINT log_entries_kind_check CHECK ((kind = ANY (ARRAY['commit'::text, 'application'::text, 'proposal'::text])))
);


--
-- Name: mailbox_heads; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.mailbox_heads (
    client_id text NOT NULL,
    last_seq bigint NOT NULL
);


--
-- Name: served_key_packages; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.served_key_packages (
    ref text NOT NULL,
    client_id text NOT NULL
);


--
-- Name: store_format; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.store_format (
    kind text NOT NULL,
    version integer NOT NULL
);


--
-- Name: welcome_messages; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.welcome_messages (
    id bigint NOT NULL,
    group_id text NOT NULL,
    commit_seq bigint NOT NULL,
    welcome bytea NOT NULL,
    appended_at bigint DEFAULT ((EXTRACT(epoch FROM clock_timestamp()) * (1000)::numeric))::bigint NOT NULL
);


--
-- Name: welcome_messages_id_seq; Type: SEQUENCE; Schema: mls; Owner: -
--

CREATE SEQUENCE mls.welcome_messages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: welcome_messages_id_seq; Type: SEQUENCE OWNED BY; Schema: mls; Owner: -
--

ALTER SEQUENCE mls.welcome_messages_id_seq OWNED BY mls.welcome_messages.id;


--
-- Name: welcomes; Type: TABLE; Schema: mls; Owner: -
--

CREATE TABLE mls.welcomes (
    client_id text NOT NULL,
    seq bigint NOT NULL,
    welcome_id bigint NOT NULL
);


--
-- Name: key_packages id; Type: DEFAULT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.key_packages ALTER COLUMN id SET DEFAULT nextval('mls.key_packages_id_seq'::regclass);


--
-- Name: welcome_messages id; Type: DEFAULT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.welcome_messages ALTER COLUMN id SET DEFAULT nextval('mls.welcome_messages_id_seq'::regclass);


--
-- Data for Name: device_list_entries; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.device_list_entries (user_id, "position", entry) FROM stdin;
\.


--
-- Data for Name: fetch_cursors; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.fetch_cursors (group_id, client_id, seq) FROM stdin;
aa01	bob/laptop	2
\.


--
-- Data for Name: group_public_state; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.group_public_state (group_id, epoch, state, group_info) FROM stdin;
\.


--
-- Data for Name: groups; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.groups (group_id, epoch, last_seq, roster, access, log_retained_from) FROM stdin;
aa01	1	3	[{"clientId": "alice/phone", "leafIndex": 0}, {"clientId": "bob/laptop", "leafIndex": 1}]	[{"fromSeq": 0, "clientId": "alice/phone", "untilSeq": null}, {"fromSeq": 1, "clientId": "bob/laptop", "untilSeq": null}]	1
\.


--
-- Data for Name: identities; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.identities (client_id, user_id, device_id, signature_public_key, ciphersuite, registered_at) FROM stdin;
alice/phone	alice	phone	\\x3f9a48110fbea87d2fd208b9efc6d875ffaaa8612f4e884dcfe268090f5658c5	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519	1700000000000
bob/laptop	bob	laptop	\\x52a931b636495dae524111eec6914de642a9617646a9adcee221e18ed6911d26	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519	1700000000000
\.


--
-- Data for Name: key_packages; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.key_packages (id, ref, client_id, key_package, not_after) FROM stdin;
2	b2	bob/laptop	\\x082b8b1814c31fc840eb3328ac73c7d8d86b7bb8c4030fc8704b83483cf31798a8abab187483bf48202b93a8cc33a718f86b1bf824c3af48504be308dc337758c8abcb18d443df4800eb73286cf387d818eb3bb88403cf48304bc3487cf35798682beb1834837fc8e0abd3a88c33679838ebdb78e4436fc8104b23881cb3b7d8882b0b1894c39fc8c0ebb3282c7347d8586bfbb844038fc8f04b0348bcf3979828ab2b18f4833f48a02b13a84c332718786b9bf8a4c32f48d04b63085c33f75848ab4b1854435f4880ebf328ecf307d898ebbbb804034f48b04b4348fcf3d798e82b6b18b483ffc860ab53a80c33e798b8eb5b786443efc8904ba3889cb337d8082b8b1814c31fc840eb3328ac73c7d8d86b7bb8c4030fc8704b83483cf31798a8abab187483bf48202b93a8	4000000000
3	b3	bob/laptop	\\x7150160f513c4eeb59f08e5fa92c86ab6150e6af619c3e8b69507eff590c56eb9110b68f317caeab3930ee1f496ce66b4150462f815cdecb89101e3fb9ccf66bb1d0d68f91bc8e6b19f0ce5fe92c462ba1d0a6af219cfe0ba9d03eff998c966b5190f68ff1fc6e2b7930ae1f096c26eb015086afc15c1e4b49905e3f794cb66bf150960fd13cceebd9f00e5f292c06abe15066afe19cbe8be950feffd90cd6eb1110368fb17c2eabb9306e1fc96c666bc150c62f015c5ecb09109e3f39cc766b31d0568f11bc0e6b99f04e5f692cc62b21d026afa19c7e0b29d0beff198c166bd190768f71fcee2bf9302e1f896ca6eb815006af415c9e4bc990de3ff94c366b7150160f513c4eeb59f08e5fa92c86ab6150e6af619c3e8b69507eff590c56eb9110b68f317caeab3930ee1f	4000000000
\.


--
-- Data for Name: known_key_package_refs; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.known_key_package_refs (ref) FROM stdin;
b1
b2
b3
blr
\.


--
-- Data for Name: last_resort_key_packages; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.last_resort_key_packages (client_id, ref, key_package, not_after) FROM stdin;
bob/laptop	blr	\\xd00393b05c1ba7e038238b80644b9fb0e063e3d08cdbb7e068e3fba0f4cb4ff0708373f0bcdb472098a3ab80c4cb7ff040e303902c5b97e008235b20148bef70900353309c9be7e078234b00a4cb5f3020e3a3d0ccdbf7e0a863bba0b4cb8f70308333f0fcdb87a0d8a36b00044b3ff08063c3106c5bd7e048231b20d40b2ff0500313b0dc1b27e0b8230b80e44b1fb0606363d00cdb37e0e8e37ba074cbcff0f083f3f03cdbc72018a32b8044cbfff0c0e38390ac5b17e08823db20948b6f701003d3301c9b67e0f823cb0024cbdf30a0e323d04cdb77e028633ba034cb0f70b083b3f07cdb07a058a3eb00844bbff000634310ec5b57e0c8239b20540baff0d00393b05c1ba7e038238b80644b9fb0e063e3d08cdbb7e068e3fba0f4cb4ff0708373f0bcdb472098a3ab80	4000000000
\.


--
-- Data for Name: log_entries; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.log_entries (group_id, seq, kind, epoch, sender, message, digest, appended_at) FROM stdin;
aa01	1	commit	0	alice/phone	\\x41c066ff21ac9edb2960de4f799cd69bd14016df91cc2ebb99806e2f493c86db210086bf01ac3e5b09607ecf599c365b71c0f61fb1cc8e3bb980ceaf693c265b814026ff61ac5e5be9e09e4fb91c161b11c0d65f514cee3bd9802e2f093c465be180c6bfc12c7e5b4960be4f199cf6db31c0369ff1ccce3b79000e2fa9bc665bc1c0e6ffa1ac1edba9605e4ff99c569b514096df11ccaebb1980ee2fc93c06dba10006bf81acbe5b8960fecfd99cb65bf1c0761f31cc0e3b39804eafe93ca65b0140a6ffe1acde5b	digest-1	1795994411261
aa01	2	application	1	alice/phone	\\xaa31497e0e51f5f6da291956ae99b5ce7a71d9fe5e110556ca294916be99856ecaf129be6e1195363ae9f996ce59550e9a31b93ebed1a5d6aa69a9d65ed9a56e6ab189feced1b5f61aa95956ee99754e3a71197e1e11c5d68a2909167e19c56e0a71e93eae91d536fa69b9968e59958eda3179befed1e5d6ea69e9d69e5965ee2a31c97e8e5175f65a2999562e9935cefa7159fede1185564a29c9163e99056e4af1a9beee111536bae979964e59d50e1a31393e3ed125d62a6929d6ded9256eeab109fe4ed135f6	digest-2	1795994411265
aa01	3	application	1	bob/laptop	\\x13563c2d8b8a64d903be5cf5fb42a431f3c6bc7d4bfa8469e38efca53bd224e1d3f6bc4d4b2ae4f9031edcd5fbe22451b3a6fcddcbda84c963aefc457b32e4c113163ced0bca641983fe5c357b02a4f17386bc3d4b3a04a9634e7c65bb12a42153b6bc0d4b6ae439835edc157ba22411b3667c9dcb1a0409e36e7c057b72e40113d63cad8b0a6459033e5c75fbc2a4b1f346bcfd4b7a84e9e30efc253b522461d376bccd4baae479039edc55fb6224d1b326fc5dcb5a8449632efcc57bb2e44113963c6d0b4a6499	digest-3	1795994411266
\.


--
-- Data for Name: mailbox_heads; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.mailbox_heads (client_id, last_seq) FROM stdin;
bob/laptop	1
\.


--
-- Data for Name: served_key_packages; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.served_key_packages (ref, client_id) FROM stdin;
b1	bob/laptop
\.


--
-- Data for Name: store_format; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.store_format (kind, version) FROM stdin;
mls server store	5
\.


--
-- Data for Name: welcome_messages; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.welcome_messages (id, group_id, commit_seq, welcome, appended_at) FROM stdin;
1	aa01	1	\\x1ecddd7a5a8dd1e25ef56d92ba15818a6eed6d5aca0d81224ef53dd24af5f1aa3ecd3d3a3acdf1e2fe758d525a55a18ace6d8d1a6a8d6162aeb51dd2aab5d1aa5ecd1dfa1a8d91e29e752d927a95c18a2eedadda8a0d41a28e75fd520af5312a7ecd7d3afa4db1e23ef54dd21a55e18a8e6dcd1a2a8d2162eeb5dd526a35112a9ecd5d7ada8d51e2def5ed923a15018aeeeded5a4a0d0122cef5bdd2caf571aabecdbd3abacd71e27e750d52da55218a4e6d0d1aea8de1622eb59dd22ab551aadecd9dfa9a8d11e21e75ad92fa95418aaeed2dda0a0dc1a20e757d528af5b12afecdfd3a7a4d31e2bef5cdd29a55618a0e6d4d1aaa8da1626eb55d52ea35912a1ecddd7a5a8dd1e25ef56d92ba15818a6eed6d5aca0d81224ef53dd24af5f1aa3ecd3d3a3acdf1e2fe758d525a55a18ace6d8d1a6a8d6162aeb51dd2aab5d1aa5ecd1dfa1a8d91e29e752d927a95c18a2eedadda8a0d41a28e75fd520af5312a7ecd7d3afa4db1e23ef54dd21a55e18a8e6dcd1a2a8d2162eeb5dd526a35112a9ecd5d7ada8d51e2def5ed923a15018aeeeded5a4a0d0122cef5bdd2caf571aabecdbd3abacd71e27e750d52da55218a4e6d0d1aea8de1622eb59dd22ab551aadecd9dfa9a8d11e21e75ad92fa95418aaeed2dda0a0dc1a20e757d528af5b12afecdfd3a7a4d31e2bef5cdd29a55618a0e6d4d1a	1795994411262
\.


--
-- Data for Name: welcomes; Type: TABLE DATA; Schema: mls; Owner: -
--

COPY mls.welcomes (client_id, seq, welcome_id) FROM stdin;
bob/laptop	1	1
\.


--
-- Name: key_packages_id_seq; Type: SEQUENCE SET; Schema: mls; Owner: -
--

SELECT pg_catalog.setval('mls.key_packages_id_seq', 3, true);


--
-- Name: welcome_messages_id_seq; Type: SEQUENCE SET; Schema: mls; Owner: -
--

SELECT pg_catalog.setval('mls.welcome_messages_id_seq', 1, true);


--
-- Name: device_list_entries device_list_entries_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.device_list_entries
    ADD CONSTRAINT device_list_entries_pkey PRIMARY KEY (user_id, "position");


--
-- Name: fetch_cursors fetch_cursors_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.fetch_cursors
    ADD CONSTRAINT fetch_cursors_pkey PRIMARY KEY (group_id, client_id);


--
-- Name: group_public_state group_public_state_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.group_public_state
    ADD CONSTRAINT group_public_state_pkey PRIMARY KEY (group_id);


--
-- Name: groups groups_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.groups
    ADD CONSTRAINT groups_pkey PRIMARY KEY (group_id);


--
-- Name: identities identities_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.identities
    ADD CONSTRAINT identities_pkey PRIMARY KEY (client_id);


--
-- Name: key_packages key_packages_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.key_packages
    ADD CONSTRAINT key_packages_pkey PRIMARY KEY (id);


--
-- Name: key_packages key_packages_ref_key; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.key_packages
    ADD CONSTRAINT key_packages_ref_key UNIQUE (ref);


--
-- Name: known_key_package_refs known_key_package_refs_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.known_key_package_refs
    ADD CONSTRAINT known_key_package_refs_pkey PRIMARY KEY (ref);


--
-- Name: last_resort_key_packages last_resort_key_packages_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.last_resort_key_packages
    ADD CONSTRAINT last_resort_key_packages_pkey PRIMARY KEY (client_id);


--
-- Name: last_resort_key_packages last_resort_key_packages_ref_key; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.last_resort_key_packages
    ADD CONSTRAINT last_resort_key_packages_ref_key UNIQUE (ref);


--
-- Name: log_entries log_entries_group_id_digest_key; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.log_entries
    ADD CONSTRAINT log_entries_group_id_digest_key UNIQUE (group_id, digest);


--
-- Name: log_entries log_entries_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.log_entries
    ADD CONSTRAINT log_entries_pkey PRIMARY KEY (group_id, seq);


--
-- Name: mailbox_heads mailbox_heads_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.mailbox_heads
    ADD CONSTRAINT mailbox_heads_pkey PRIMARY KEY (client_id);


--
-- Name: served_key_packages served_key_packages_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.served_key_packages
    ADD CONSTRAINT served_key_packages_pkey PRIMARY KEY (ref);


--
-- Name: welcome_messages welcome_messages_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.welcome_messages
    ADD CONSTRAINT welcome_messages_pkey PRIMARY KEY (id);


--
-- Name: welcomes welcomes_pkey; Type: CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.welcomes
    ADD CONSTRAINT welcomes_pkey PRIMARY KEY (client_id, seq);


--
-- Name: identities_by_user; Type: INDEX; Schema: mls; Owner: -
--

CREATE INDEX identities_by_user ON mls.identities USING btree (user_id, client_id COLLATE "C");


--
-- Name: key_packages_by_client; Type: INDEX; Schema: mls; Owner: -
--

CREATE INDEX key_packages_by_client ON mls.key_packages USING btree (client_id, id);


--
-- Name: log_entries_by_kind; Type: INDEX; Schema: mls; Owner: -
--

CREATE INDEX log_entries_by_kind ON mls.log_entries USING btree (kind, appended_at);


--
-- Name: welcome_messages_by_age; Type: INDEX; Schema: mls; Owner: -
--

CREATE INDEX welcome_messages_by_age ON mls.welcome_messages USING btree (appended_at);


--
-- Name: welcome_messages_by_commit; Type: INDEX; Schema: mls; Owner: -
--

CREATE INDEX welcome_messages_by_commit ON mls.welcome_messages USING btree (group_id, commit_seq);


--
-- Name: welcomes_by_message; Type: INDEX; Schema: mls; Owner: -
--

CREATE INDEX welcomes_by_message ON mls.welcomes USING btree (welcome_id);


--
-- Name: group_public_state group_public_state_group_id_fkey; Type: FK CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.group_public_state
    ADD CONSTRAINT group_public_state_group_id_fkey FOREIGN KEY (group_id) REFERENCES mls.groups(group_id);


--
-- Name: key_packages key_packages_ref_fkey; Type: FK CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.key_packages
    ADD CONSTRAINT key_packages_ref_fkey FOREIGN KEY (ref) REFERENCES mls.known_key_package_refs(ref);


--
-- Name: last_resort_key_packages last_resort_key_packages_ref_fkey; Type: FK CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.last_resort_key_packages
    ADD CONSTRAINT last_resort_key_packages_ref_fkey FOREIGN KEY (ref) REFERENCES mls.known_key_package_refs(ref);


--
-- Name: log_entries log_entries_group_id_fkey; Type: FK CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.log_entries
    ADD CONSTRAINT log_entries_group_id_fkey FOREIGN KEY (group_id) REFERENCES mls.groups(group_id);


--
-- Name: served_key_packages served_key_packages_ref_fkey; Type: FK CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.served_key_packages
    ADD CONSTRAINT served_key_packages_ref_fkey FOREIGN KEY (ref) REFERENCES mls.known_key_package_refs(ref);


--
-- Name: welcome_messages welcome_messages_group_id_fkey; Type: FK CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.welcome_messages
    ADD CONSTRAINT welcome_messages_group_id_fkey FOREIGN KEY (group_id) REFERENCES mls.groups(group_id);


--
-- Name: welcomes welcomes_welcome_id_fkey; Type: FK CONSTRAINT; Schema: mls; Owner: -
--

ALTER TABLE ONLY mls.welcomes
    ADD CONSTRAINT welcomes_welcome_id_fkey FOREIGN KEY (welcome_id) REFERENCES mls.welcome_messages(id);


--
-- PostgreSQL database dump complete
--


