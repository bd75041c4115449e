//! Every service's gRPC bootstrap over real sockets: health, reflection,
//! deny-by-default authentication; and the trace context and CloudEvents
//! headers an HTTP request leaves on the event it causes.

use anyhow::Result;
use eva_platform::auth::{Role, TokenSigner};
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::key_service_client::KeyServiceClient;
use eva_proto::identity::v1::structure_service_client::StructureServiceClient;
use eva_tests::sandbox::{Backend, Sandbox};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn channel(endpoint: &str) -> Result<Channel> {
    Ok(Channel::from_shared(endpoint.to_owned())?.connect().await?)
}

async fn services_of(ch: Channel) -> Result<Vec<String>> {
    let mut client = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await?
        .into_inner();
    let mut names = Vec::new();
    if let Some(r) = answers.message().await?
        && let Some(MessageResponse::ListServicesResponse(list)) = r.message_response
    {
        names = list.service.into_iter().map(|s| s.name).collect();
    }
    Ok(names)
}

#[tokio::test]
async fn services_answer_health_and_reflection_and_deny_by_default() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    for endpoint in [
        &sb.config.identity.endpoint,
        &sb.config.diagnostics.endpoint,
        &sb.config.statistics.endpoint,
    ] {
        let ch = channel(endpoint).await?;
        let health = HealthClient::new(ch.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner();
        assert_eq!(health.status, ServingStatus::Serving as i32);
        let names = services_of(ch).await?;
        assert!(
            names.iter().any(|n| n == "grpc.health.v1.Health"),
            "{names:?}"
        );
    }
    // Diagnostics registers what is built: the référentiel, the
    // diagnostics, the action plan and its export part.
    let names = services_of(channel(&sb.config.diagnostics.endpoint).await?).await?;
    for built in [
        "eva.diagnostics.v1.ReferentielService",
        "eva.diagnostics.v1.DiagnosticService",
        "eva.diagnostics.v1.ActionPlanService",
        "eva.identity.v1.PersonDataService",
    ] {
        assert!(names.iter().any(|n| n == built), "{built}: {names:?}");
    }
    let identity = channel(&sb.config.identity.endpoint).await?;
    let names = services_of(identity.clone()).await?;
    assert!(
        names
            .iter()
            .any(|n| n == "eva.identity.v1.StructureService"),
        "{names:?}"
    );
    let health = HealthClient::new(identity.clone())
        .check(HealthCheckRequest {
            service: "eva.identity.v1.StructureService".into(),
        })
        .await?
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    // No token, a token from another issuer's key: refused before any method runs.
    let mut structures = StructureServiceClient::new(identity.clone());
    let err = structures
        .list_structures(pb::ListStructuresRequest::default())
        .await
        .expect_err("no token must be refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let stranger = TokenSigner::generate();
    let forged = stranger.sign(&TokenSigner::claims(
        "eva",
        "eva",
        "intruder",
        vec![Role::Operator],
        vec![],
        std::time::Duration::from_secs(60),
    ));
    let mut req = tonic::Request::new(pb::ListStructuresRequest::default());
    req.metadata_mut()
        .insert("authorization", format!("Bearer {forged}").parse()?);
    let err = structures
        .list_structures(req)
        .await
        .expect_err("forged token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // The keys are public; a real token works.
    let jwks = KeyServiceClient::new(identity)
        .get_jwks(pb::GetJwksRequest {})
        .await?
        .into_inner();
    assert_eq!(jwks.keys.len(), 1);
    let token = sb.token("c-1", vec![Role::Counselor], vec![]).await?;
    let mut req = tonic::Request::new(pb::ListStructuresRequest::default());
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    structures.list_structures(req).await?;
    sb.stop().await
}

#[tokio::test]
async fn an_event_carries_cloudevents_headers_and_the_callers_trace() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = sb
        .http
        .post(sb.url("/api/v1/structures"))
        .bearer_auth(&operator)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({
            "name": "Tremplin", "siret": "73282932000074", "kind": "ai", "commune_insee": "27229"
        }))
        .send()
        .await?;
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await?;

    let client = sb.nats.connect().await?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("EVA_IDENTITY").await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let msg = loop {
        match stream
            .get_last_raw_message_by_subject("eva.identity.structure.created")
            .await
        {
            Ok(m) => break m,
            Err(e) if std::time::Instant::now() > deadline => anyhow::bail!("no event: {e}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    };
    let h = |k: &str| {
        msg.headers
            .get(k)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(h("ce-specversion"), "1.0");
    assert_eq!(h("ce-type"), "eva.identity.structure.created");
    assert_eq!(h("ce-source"), "/eva/identity");
    assert_eq!(h("ce-subject"), created["id"].as_str().unwrap_or_default());
    assert_eq!(h("content-type"), "application/protobuf");
    assert_eq!(h("Nats-Msg-Id"), h("ce-id"));
    assert!(uuid::Uuid::parse_str(&h("ce-id")).is_ok());
    assert!(
        h("traceparent").contains(trace_id),
        "the caller's trace did not reach the event: {:?}",
        h("traceparent")
    );
    let event: pb::StructureCreated = prost::Message::decode(msg.payload)?;
    assert_eq!(
        event.structure_id,
        created["id"].as_str().unwrap_or_default()
    );
    assert_eq!(event.kind, pb::StructureKind::Ai as i32);
    sb.stop().await
}
