// @generated automatically by Diesel CLI.

diesel::table! {
    nodes (id) {
        id -> Int4,
        peer_id -> Text,
        run_id -> Int4,
        region -> Text,
        instance_type -> Text,
        dependencies -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    nodes_ecs (id) {
        id -> Int4,
        cpu -> Int4,
        memory -> Int4,
        peer_id -> Text,
        region -> Text,
        cmd -> Text,
        fleet -> Text,
        dependencies -> Jsonb,
        ip_address -> Inet,
        server_port -> Int4,
        peer_port -> Int4,
        last_heartbeat -> Nullable<Timestamptz>,
        offline_since -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    provides (id) {
        id -> Int4,
        node_id -> Int4,
        rt_size -> Int4,
        duration -> Float8,
        cid -> Text,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    provides_ecs (id) {
        id -> Int4,
        scheduler_id -> Int4,
        node_id -> Int4,
        rt_size -> Int4,
        duration -> Float8,
        cid -> Text,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        step -> Text,
        round_id -> Nullable<Uuid>,
        started_at -> Nullable<Timestamptz>,
        probe -> Nullable<Int4>,
        trace_id -> Nullable<Text>,
        measurement_id -> Nullable<Uuid>,
        record_peers -> Nullable<Int4>,
        connections -> Nullable<Text>,
    }
}

diesel::table! {
    pubsub_deliveries_ecs (id) {
        id -> Int4,
        scheduler_id -> Int4,
        node_id -> Int4,
        round_id -> Uuid,
        measurement_id -> Uuid,
        trace_id -> Nullable<Text>,
        started_at -> Timestamptz,
        topic -> Text,
        message_id -> Text,
        duration -> Float8,
        error -> Nullable<Text>,
        copies -> Int4,
        first_from -> Nullable<Text>,
        clock_offset -> Nullable<Float8>,
        clock_uncertainty -> Nullable<Float8>,
        implementation -> Text,
    }
}

diesel::table! {
    pubsub_publishes_ecs (id) {
        id -> Int4,
        scheduler_id -> Int4,
        node_id -> Int4,
        round_id -> Uuid,
        measurement_id -> Uuid,
        trace_id -> Nullable<Text>,
        started_at -> Timestamptz,
        topic -> Text,
        message_id -> Text,
        message_bytes -> Int4,
        duration -> Float8,
        error -> Nullable<Text>,
        topic_peers -> Nullable<Int4>,
        mesh_peers -> Nullable<Int4>,
    }
}

diesel::table! {
    reprovide_observations_ecs (id) {
        id -> Int4,
        round_measurement_id -> Uuid,
        walks -> Int4,
        connections -> Nullable<Int8>,
        bytes_out -> Nullable<Int8>,
        cpu -> Nullable<Float8>,
        peak_memory -> Nullable<Int8>,
        sampled -> Int4,
        found -> Int4,
        placements -> Int4,
        placed -> Int4,
    }
}

diesel::table! {
    reprovide_regions_ecs (id) {
        id -> Int4,
        round_measurement_id -> Uuid,
        walk -> Int4,
        prefix -> Text,
        regions -> Int4,
        peers -> Int4,
        cids -> Int8,
        lookups -> Int8,
        messages -> Int8,
        failures -> Int8,
        copies_stored -> Int8,
        duration -> Float8,
    }
}

diesel::table! {
    reprovide_rounds_ecs (id) {
        id -> Int4,
        scheduler_id -> Int4,
        node_id -> Int4,
        round_id -> Uuid,
        measurement_id -> Uuid,
        trace_id -> Nullable<Text>,
        started_at -> Timestamptz,
        strategy -> Text,
        workers -> Int4,
        cids -> Int8,
        duration -> Float8,
        error -> Nullable<Text>,
        lookups -> Int8,
        messages -> Int8,
        failures -> Int8,
        copies_stored -> Int8,
    }
}

diesel::table! {
    retrievals (id) {
        id -> Int4,
        node_id -> Int4,
        rt_size -> Int4,
        duration -> Float8,
        cid -> Text,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    retrievals_ecs (id) {
        id -> Int4,
        scheduler_id -> Int4,
        node_id -> Int4,
        rt_size -> Int4,
        duration -> Float8,
        cid -> Text,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        round_id -> Nullable<Uuid>,
        started_at -> Nullable<Timestamptz>,
        probe -> Nullable<Int4>,
        trace_id -> Nullable<Text>,
        measurement_id -> Nullable<Uuid>,
        step -> Text,
        connections -> Nullable<Text>,
    }
}

diesel::table! {
    runs (id) {
        id -> Int4,
        dependencies -> Jsonb,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    schedulers_ecs (id) {
        id -> Int4,
        fleets -> Array<Nullable<Text>>,
        dependencies -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(nodes -> runs (run_id));
diesel::joinable!(provides -> nodes (node_id));
diesel::joinable!(provides_ecs -> nodes_ecs (node_id));
diesel::joinable!(provides_ecs -> schedulers_ecs (scheduler_id));
diesel::joinable!(pubsub_deliveries_ecs -> nodes_ecs (node_id));
diesel::joinable!(pubsub_deliveries_ecs -> schedulers_ecs (scheduler_id));
diesel::joinable!(pubsub_publishes_ecs -> nodes_ecs (node_id));
diesel::joinable!(pubsub_publishes_ecs -> schedulers_ecs (scheduler_id));
diesel::joinable!(reprovide_rounds_ecs -> nodes_ecs (node_id));
diesel::joinable!(reprovide_rounds_ecs -> schedulers_ecs (scheduler_id));
diesel::joinable!(retrievals -> nodes (node_id));
diesel::joinable!(retrievals_ecs -> nodes_ecs (node_id));
diesel::joinable!(retrievals_ecs -> schedulers_ecs (scheduler_id));

diesel::allow_tables_to_appear_in_same_query!(
    nodes,
    nodes_ecs,
    provides,
    provides_ecs,
    pubsub_deliveries_ecs,
    pubsub_publishes_ecs,
    reprovide_observations_ecs,
    reprovide_regions_ecs,
    reprovide_rounds_ecs,
    retrievals,
    retrievals_ecs,
    runs,
    schedulers_ecs,
);
