// @generated automatically by Diesel CLI.

diesel::table! {
    nodes_ecs (id) {
        id -> Integer,
        cpu -> Integer,
        memory -> Integer,
        peer_id -> Text,
        region -> Text,
        cmd -> Text,
        fleet -> Text,
        dependencies -> Text,
        ip_address -> Text,
        server_port -> Integer,
        peer_port -> Integer,
        last_heartbeat -> Nullable<Timestamp>,
        offline_since -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    provides_ecs (id) {
        id -> Integer,
        scheduler_id -> Integer,
        node_id -> Integer,
        rt_size -> Integer,
        duration -> Double,
        cid -> Text,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        step -> Text,
        round_id -> Nullable<Text>,
        started_at -> Nullable<Timestamp>,
        probe -> Nullable<Integer>,
        trace_id -> Nullable<Text>,
        measurement_id -> Nullable<Text>,
        record_peers -> Nullable<Integer>,
        connections -> Nullable<Text>,
    }
}

diesel::table! {
    pubsub_deliveries_ecs (id) {
        id -> Integer,
        scheduler_id -> Integer,
        node_id -> Integer,
        round_id -> Text,
        measurement_id -> Text,
        trace_id -> Nullable<Text>,
        started_at -> Timestamp,
        topic -> Text,
        message_id -> Text,
        duration -> Double,
        error -> Nullable<Text>,
        copies -> Integer,
        first_from -> Nullable<Text>,
        clock_offset -> Nullable<Double>,
        clock_uncertainty -> Nullable<Double>,
        implementation -> Text,
    }
}

diesel::table! {
    pubsub_publishes_ecs (id) {
        id -> Integer,
        scheduler_id -> Integer,
        node_id -> Integer,
        round_id -> Text,
        measurement_id -> Text,
        trace_id -> Nullable<Text>,
        started_at -> Timestamp,
        topic -> Text,
        message_id -> Text,
        message_bytes -> Integer,
        duration -> Double,
        error -> Nullable<Text>,
        topic_peers -> Nullable<Integer>,
        mesh_peers -> Nullable<Integer>,
    }
}

diesel::table! {
    reprovide_observations_ecs (id) {
        id -> Integer,
        round_measurement_id -> Text,
        walks -> Integer,
        connections -> Nullable<BigInt>,
        bytes_out -> Nullable<BigInt>,
        cpu -> Nullable<Double>,
        peak_memory -> Nullable<BigInt>,
        sampled -> Integer,
        found -> Integer,
        placements -> Integer,
        placed -> Integer,
    }
}

diesel::table! {
    reprovide_regions_ecs (id) {
        id -> Integer,
        round_measurement_id -> Text,
        walk -> Integer,
        prefix -> Text,
        regions -> Integer,
        peers -> Integer,
        cids -> BigInt,
        lookups -> BigInt,
        messages -> BigInt,
        failures -> BigInt,
        copies_stored -> BigInt,
        duration -> Double,
    }
}

diesel::table! {
    reprovide_rounds_ecs (id) {
        id -> Integer,
        scheduler_id -> Integer,
        node_id -> Integer,
        round_id -> Text,
        measurement_id -> Text,
        trace_id -> Nullable<Text>,
        started_at -> Timestamp,
        strategy -> Text,
        workers -> Integer,
        cids -> BigInt,
        duration -> Double,
        error -> Nullable<Text>,
        lookups -> BigInt,
        messages -> BigInt,
        failures -> BigInt,
        copies_stored -> BigInt,
    }
}

diesel::table! {
    retrievals_ecs (id) {
        id -> Integer,
        scheduler_id -> Integer,
        node_id -> Integer,
        rt_size -> Integer,
        duration -> Double,
        cid -> Text,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        round_id -> Nullable<Text>,
        started_at -> Nullable<Timestamp>,
        probe -> Nullable<Integer>,
        trace_id -> Nullable<Text>,
        measurement_id -> Nullable<Text>,
        step -> Text,
        connections -> Nullable<Text>,
    }
}

diesel::table! {
    schedulers_ecs (id) {
        id -> Integer,
        fleets -> Text,
        dependencies -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(provides_ecs -> nodes_ecs (node_id));
diesel::joinable!(provides_ecs -> schedulers_ecs (scheduler_id));
diesel::joinable!(pubsub_deliveries_ecs -> nodes_ecs (node_id));
diesel::joinable!(pubsub_deliveries_ecs -> schedulers_ecs (scheduler_id));
diesel::joinable!(pubsub_publishes_ecs -> nodes_ecs (node_id));
diesel::joinable!(pubsub_publishes_ecs -> schedulers_ecs (scheduler_id));
diesel::joinable!(reprovide_rounds_ecs -> nodes_ecs (node_id));
diesel::joinable!(reprovide_rounds_ecs -> schedulers_ecs (scheduler_id));
diesel::joinable!(retrievals_ecs -> nodes_ecs (node_id));
diesel::joinable!(retrievals_ecs -> schedulers_ecs (scheduler_id));

diesel::allow_tables_to_appear_in_same_query!(
    nodes_ecs,
    provides_ecs,
    pubsub_deliveries_ecs,
    pubsub_publishes_ecs,
    reprovide_observations_ecs,
    reprovide_regions_ecs,
    reprovide_rounds_ecs,
    retrievals_ecs,
    schedulers_ecs,
);
