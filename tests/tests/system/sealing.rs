//! Sealing with a person's key, straight to identity over gRPC (it is a
//! service-to-service method: no gateway route): the structure following the
//! person seals; a partner structure opens only while the person's consent
//! covers it; another person's key, another context and tampered bytes are
//! refused by name; each seal and open is in the access log; the plaintext
//! never appears in an EVA stream; after erasure it answers "données effacées".
//! A batch (`OpenSealedBatch`) answers per item, opened or refused with its
//! reason, and is one access-log event listing the domains opened.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use eva_platform::auth::{Role, TokenSigner};
use eva_proto::audit::v1::{AccessAction, AccessRecorded};
use eva_proto::identity::v1 as pb;
use eva_proto::identity::v1::rights_service_client::RightsServiceClient;
use eva_proto::identity::v1::sealing_service_client::SealingServiceClient;
use eva_tests::sandbox::{Backend, Sandbox};
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

const SIRET_A: &str = "41735218600007";
const SIRET_B: &str = "51734218700005";
/// What travels with the referral; must never be readable in a stream.
const SECRET: &str = "{\"mobilite\":\"pas de permis, MARQUEUR-SCELLE-7f3a\"}";

async fn send(
    sb: &Sandbox,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(StatusCode, Value)> {
    let mut req = sb.http.request(method, sb.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await?;
    let status = r.status();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn structure(sb: &Sandbox, operator: &str, name: &str, siret: &str) -> Result<String> {
    let body =
        json!({ "name": name, "siret": siret, "kind": "association", "commune_insee": "27229" });
    let (status, v) = send(
        sb,
        Method::POST,
        "/api/v1/structures",
        operator,
        Some(&body),
    )
    .await?;
    assert_eq!(status, 201, "{v}");
    Ok(v["id"].as_str().context("structure id")?.to_owned())
}

async fn person(sb: &Sandbox, counselor: &str, structure: &str, last: &str) -> Result<String> {
    let body = json!({
        "structure_id": structure, "first_name": "Ana", "last_name": last,
        "birth_date": "1985-05-20", "commune_insee": "27229",
    });
    let (status, v) = send(sb, Method::POST, "/api/v1/people", counselor, Some(&body)).await?;
    assert_eq!(status, 201, "{v}");
    Ok(v["id"].as_str().context("person id")?.to_owned())
}

/// A gRPC client to identity that sends `token` as the bearer.
struct Caller {
    client: SealingServiceClient<Channel>,
    token: String,
}

impl Caller {
    fn new(ch: &Channel, token: &str) -> Self {
        Self {
            client: SealingServiceClient::new(ch.clone()),
            token: token.to_owned(),
        }
    }

    fn req<T>(&self, msg: T) -> Result<tonic::Request<T>> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert("authorization", format!("Bearer {}", self.token).parse()?);
        Ok(r)
    }

    async fn seal(
        &mut self,
        person_id: &str,
        plaintext: &[u8],
        context: &str,
    ) -> Result<Result<pb::SealedPayload, tonic::Status>> {
        let r = self.req(pb::SealForPersonRequest {
            person_id: person_id.into(),
            plaintext: plaintext.to_vec(),
            context: context.into(),
        })?;
        Ok(self
            .client
            .seal_for_person(r)
            .await
            .map(|r| r.into_inner().sealed.unwrap_or_default()))
    }

    async fn open(
        &mut self,
        person_id: &str,
        sealed: &pb::SealedPayload,
        context: &str,
        structure_id: &str,
        domains: &[&str],
        purpose: pb::ConsentPurpose,
    ) -> Result<Result<Vec<u8>, tonic::Status>> {
        let r = self.req(pb::OpenSealedRequest {
            person_id: person_id.into(),
            sealed: Some(sealed.clone()),
            purpose: purpose as i32,
            domains: domains.iter().map(|d| d.to_string()).collect(),
            context: context.into(),
            structure_id: structure_id.into(),
        })?;
        Ok(self
            .client
            .open_sealed(r)
            .await
            .map(|r| r.into_inner().plaintext))
    }
}

impl Caller {
    #[allow(clippy::too_many_arguments)]
    async fn open_batch(
        &mut self,
        person_id: &str,
        structure_id: &str,
        purpose: pb::ConsentPurpose,
        items: Vec<pb::OpenSealedItem>,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Result<Vec<pb::OpenSealedItemResult>, tonic::Status>> {
        let r = self.req(pb::OpenSealedBatchRequest {
            person_id: person_id.into(),
            structure_id: structure_id.into(),
            purpose: purpose as i32,
            items,
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
        })?;
        Ok(self
            .client
            .open_sealed_batch(r)
            .await
            .map(|r| r.into_inner().results))
    }
}

impl Caller {
    async fn open_batches(
        &mut self,
        batches: Vec<pb::OpenSealedBatchRequest>,
    ) -> Result<Result<Vec<pb::OpenSealedBatchOutcome>, tonic::Status>> {
        let r = self.req(pb::OpenSealedBatchesRequest { batches })?;
        Ok(self
            .client
            .open_sealed_batches(r)
            .await
            .map(|r| r.into_inner().outcomes))
    }
}

fn batch(
    person_id: &str,
    structure_id: &str,
    items: Vec<pb::OpenSealedItem>,
    resource_id: &str,
) -> pb::OpenSealedBatchRequest {
    pb::OpenSealedBatchRequest {
        person_id: person_id.into(),
        structure_id: structure_id.into(),
        purpose: pb::ConsentPurpose::Orientation as i32,
        items,
        resource_type: "referral".into(),
        resource_id: resource_id.into(),
    }
}

fn item(sealed: &pb::SealedPayload, context: &str, domains: &[&str]) -> pb::OpenSealedItem {
    pb::OpenSealedItem {
        sealed: Some(sealed.clone()),
        context: context.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
    }
}

/// The access-log events about `person_id` of `resource_type` and `resource_id`.
async fn access_events(
    sb: &Sandbox,
    person_id: &str,
    resource_type: &str,
    resource_id: &str,
) -> Result<Vec<AccessRecorded>> {
    Ok(all_stream_messages(sb)
        .await?
        .into_iter()
        .filter(|(subject, _, _)| subject.starts_with("eva.audit."))
        .filter_map(|(_, payload, _)| AccessRecorded::decode(payload.as_slice()).ok())
        .filter(|a| {
            a.person_id == person_id
                && a.resource_type == resource_type
                && a.resource_id == resource_id
        })
        .collect())
}

fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, says: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} saying `{says}`, got {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "{}", s.message());
            assert!(
                s.message().contains(says),
                "`{}` should say `{says}`",
                s.message()
            );
        }
    }
}

/// Every message of every EVA stream: subject, payload, headers.
async fn all_stream_messages(sb: &Sandbox) -> Result<Vec<(String, Vec<u8>, Vec<u8>)>> {
    let js = async_nats::jetstream::new(sb.nats.connect().await?);
    let mut out = Vec::new();
    let mut names = js.stream_names();
    let mut streams = Vec::new();
    while let Some(name) = futures::StreamExt::next(&mut names).await {
        streams.push(name?);
    }
    for name in streams {
        let mut stream = js.get_stream(&name).await?;
        let info = stream.info().await?.state.clone();
        for seq in info.first_sequence..=info.last_sequence {
            if let Ok(m) = stream.get_raw_message(seq).await {
                let mut headers = Vec::new();
                for (k, vs) in m.headers.iter() {
                    headers.extend_from_slice(k.to_string().as_bytes());
                    for v in vs {
                        headers.extend_from_slice(v.as_str().as_bytes());
                    }
                }
                out.push((m.subject.to_string(), m.payload.to_vec(), headers));
            }
        }
    }
    Ok(out)
}

/// Waits until the access log's stream holds an entry of `resource_type`
/// about `person_id` for which `want` holds.
async fn wait_access(
    sb: &Sandbox,
    person_id: &str,
    want: impl Fn(&AccessRecorded) -> bool,
) -> Result<AccessRecorded> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for (subject, payload, _) in all_stream_messages(sb).await? {
            if !subject.starts_with("eva.audit.") {
                continue;
            }
            if let Ok(a) = AccessRecorded::decode(payload.as_slice())
                && a.person_id == person_id
                && a.resource_type == "sealed"
                && want(&a)
            {
                return Ok(a);
            }
        }
        if Instant::now() > deadline {
            bail!("no matching access-log entry for {person_id}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sealed_data_opens_only_with_consent_on_sqlite() -> Result<()> {
    sealing_story(Backend::Sqlite).await
}

#[tokio::test]
async fn sealed_data_opens_only_with_consent_on_postgres() -> Result<()> {
    sealing_story(Backend::Postgres).await
}

async fn sealing_story(backend: Backend) -> Result<()> {
    let sb = Sandbox::start(backend).await?;
    let operator = sb.token("ops-1", vec![Role::Operator], vec![]).await?;
    let a = structure(&sb, &operator, "Chantier A", SIRET_A).await?;
    let b = structure(&sb, &operator, "Partenaire B", SIRET_B).await?;
    let counselor_a = sb
        .token("counselor-a", vec![Role::Counselor], vec![a.clone()])
        .await?;
    let partner_b = sb
        .token("partner-b", vec![Role::Partner], vec![b.clone()])
        .await?;
    let counselor_b = sb
        .token("counselor-b", vec![Role::Counselor], vec![b.clone()])
        .await?;
    let ana = person(&sb, &counselor_a, &a, "Zabalveytia").await?;
    let other = person(&sb, &counselor_a, &a, "Etcheverry").await?;
    let mut claims = TokenSigner::claims(
        &sb.config.auth.issuer,
        &sb.config.auth.audience,
        &uuid::Uuid::now_v7().to_string(),
        vec![Role::Person],
        vec![],
        Duration::from_secs(600),
    );
    claims.person_id = Some(ana.clone());
    let ana_token = eva_identity::sign_claims(&sb.config, &claims).await?;

    let ch = Channel::from_shared(sb.config.identity.endpoint.clone())?
        .connect()
        .await?;
    let mut seller = Caller::new(&ch, &counselor_a);
    let mut partner = Caller::new(&ch, &partner_b);
    let ctx = format!("referral:{}:diagnostic", uuid::Uuid::now_v7());
    let orientation = pb::ConsentPurpose::Orientation;

    // Only Ana, a structure following her, or one she consented to seals
    // with her key.
    refused(
        Caller::new(&ch, &counselor_b)
            .seal(&ana, SECRET.as_bytes(), &ctx)
            .await?,
        Code::NotFound,
        "personne introuvable",
    );
    refused(
        partner.seal(&ana, SECRET.as_bytes(), &ctx).await?,
        Code::NotFound,
        "personne introuvable",
    );
    let sealed = seller.seal(&ana, SECRET.as_bytes(), &ctx).await??;
    assert!(sealed.key_id.starts_with("dk1-"), "{}", sealed.key_id);
    assert!(
        !sealed
            .ciphertext
            .windows(b"MARQUEUR".len())
            .any(|w| w == b"MARQUEUR")
    );
    // Bad input, by name.
    refused(
        seller.seal(&ana, &vec![b'x'; 256 * 1024 + 1], &ctx).await?,
        Code::InvalidArgument,
        "plaintext",
    );
    refused(
        seller.seal(&ana, SECRET.as_bytes(), "").await?,
        Code::InvalidArgument,
        "context",
    );
    refused(
        seller.seal("not-an-id", SECRET.as_bytes(), &ctx).await?,
        Code::InvalidArgument,
        "person_id",
    );

    // B has no consent yet: denied, with the reason.
    refused(
        partner
            .open(&ana, &sealed, &ctx, &b, &["mobilite"], orientation)
            .await?,
        Code::PermissionDenied,
        "aucun consentement",
    );
    // Ana lets B see her mobility for orientation.
    let (status, consent) = send(
        &sb,
        Method::POST,
        &format!("/api/v1/people/{ana}/consents"),
        &ana_token,
        Some(&json!({ "grantee_structure_id": b, "domains": ["mobilite"], "purposes": ["orientation"] })),
    )
    .await?;
    assert_eq!(status, 201, "{consent}");
    let consent_id = consent["id"].as_str().context("consent id")?.to_owned();
    let opened = partner
        .open(&ana, &sealed, &ctx, &b, &["mobilite"], orientation)
        .await??;
    assert_eq!(opened, SECRET.as_bytes());
    // With her consent, the partner may also write sealed (its answer to a
    // referral, its messages).
    let answer = partner.seal(&ana, b"{\"reponse\":1}", &ctx).await??;
    assert!(answer.key_id.starts_with("dk1-"), "{}", answer.key_id);

    // A batch: authorised once, each item opened or refused on its own, one
    // access-log event listing the domains opened.
    let ctx2 = format!("referral:{}:diagnostic", uuid::Uuid::now_v7());
    let second = seller.seal(&ana, b"{\"deux\":1}", &ctx2).await??;
    let mut bad_bytes = sealed.clone();
    let end = bad_bytes.ciphertext.len() - 1;
    bad_bytes.ciphertext[end] ^= 1;
    let batch_id = uuid::Uuid::now_v7().to_string();
    let results = partner
        .open_batch(
            &ana,
            &b,
            orientation,
            vec![
                item(&sealed, &ctx, &["mobilite"]),
                item(&sealed, &ctx, &["sante"]),
                item(&bad_bytes, &ctx, &["mobilite"]),
                item(&second, &ctx2, &["mobilite"]),
                item(&sealed, &ctx, &[]),
                item(&sealed, "referral:other:diagnostic", &["mobilite"]),
            ],
            "diagnostic",
            &batch_id,
        )
        .await??;
    assert_eq!(results.len(), 6);
    assert_eq!(results[0].plaintext, SECRET.as_bytes());
    assert_eq!(results[0].refusal, pb::OpenRefusal::Unspecified as i32);
    assert!(results[1].plaintext.is_empty());
    assert_eq!(results[1].refusal, pb::OpenRefusal::Consent as i32);
    assert_eq!(results[1].domain, "sante");
    assert!(
        results[1].message.contains("domaine non couvert"),
        "{}",
        results[1].message
    );
    assert!(results[2].plaintext.is_empty());
    assert_eq!(results[2].refusal, pb::OpenRefusal::Sealed as i32);
    assert!(
        results[2].message.contains("altérées"),
        "{}",
        results[2].message
    );
    assert_eq!(results[3].plaintext, b"{\"deux\":1}");
    assert_eq!(results[4].refusal, pb::OpenRefusal::DomainsRequired as i32);
    assert_eq!(results[5].refusal, pb::OpenRefusal::Sealed as i32);
    // The follower opens without a consent to itself, and without domains.
    let mine = seller
        .open_batch(
            &ana,
            &a,
            orientation,
            vec![item(&sealed, &ctx, &[]), item(&second, &ctx2, &[])],
            "diagnostic",
            &batch_id,
        )
        .await??;
    assert_eq!(mine[0].plaintext, SECRET.as_bytes());
    assert_eq!(mine[1].plaintext, b"{\"deux\":1}");
    // Refused whole, by name: another structure, too many items, too many
    // bytes, a bad item, a bad resource.
    refused(
        partner
            .open_batch(
                &ana,
                &a,
                orientation,
                vec![item(&sealed, &ctx, &["mobilite"])],
                "diagnostic",
                &batch_id,
            )
            .await?,
        Code::PermissionDenied,
        "vous n'agissez pas pour cette structure",
    );
    refused(
        partner
            .open_batch(
                &ana,
                &b,
                orientation,
                vec![item(&sealed, &ctx, &["mobilite"]); 65],
                "diagnostic",
                &batch_id,
            )
            .await?,
        Code::InvalidArgument,
        "items",
    );
    let big = pb::SealedPayload {
        ciphertext: vec![0; 256 * 1024],
        key_id: sealed.key_id.clone(),
    };
    refused(
        partner
            .open_batch(
                &ana,
                &b,
                orientation,
                vec![item(&big, &ctx, &["mobilite"]); 9],
                "diagnostic",
                &batch_id,
            )
            .await?,
        Code::InvalidArgument,
        "items",
    );
    refused(
        partner
            .open_batch(&ana, &b, orientation, vec![], "diagnostic", &batch_id)
            .await?,
        Code::InvalidArgument,
        "items",
    );
    refused(
        partner
            .open_batch(
                &ana,
                &b,
                orientation,
                vec![item(&sealed, &ctx, &["mobilité"])],
                "diagnostic",
                &batch_id,
            )
            .await?,
        Code::InvalidArgument,
        "items.domains",
    );
    refused(
        partner
            .open_batch(
                &ana,
                &b,
                orientation,
                vec![item(&sealed, &ctx, &["mobilite"])],
                "Diagnostic !",
                &batch_id,
            )
            .await?,
        Code::InvalidArgument,
        "resource_type",
    );
    refused(
        partner
            .open_batch(
                &ana,
                &b,
                orientation,
                vec![item(&sealed, &ctx, &["mobilite"])],
                "diagnostic",
                "",
            )
            .await?,
        Code::InvalidArgument,
        "resource_id",
    );
    // One event for B's batch, listing only the domain opened; one for A's.
    let deadline = Instant::now() + Duration::from_secs(15);
    let events = loop {
        let events = access_events(&sb, &ana, "diagnostic", &batch_id).await?;
        if events.len() >= 2 || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let of_b: Vec<_> = events
        .iter()
        .filter(|e| e.actor_structure_id == b)
        .collect();
    assert_eq!(of_b.len(), 1, "{events:?}");
    assert_eq!(of_b[0].action, AccessAction::Read as i32);
    assert_eq!(of_b[0].domains, ["mobilite"]);
    assert_eq!(of_b[0].purpose, "orientation");
    assert_eq!(of_b[0].actor_role, "partner");
    assert_eq!(events.len(), 2, "{events:?}");
    // Several batches in one call (a list of referrals): each answers as it
    // would alone, a refused one refuses only itself, each opened one is its
    // own access entry.
    let (list_1, list_2) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    let outcomes = partner
        .open_batches(vec![
            batch(&ana, &b, vec![item(&sealed, &ctx, &["mobilite"])], &list_1),
            batch(&ana, &a, vec![item(&sealed, &ctx, &["mobilite"])], &list_2),
            batch(
                &unknown,
                &b,
                vec![item(&sealed, &ctx, &["mobilite"])],
                &list_2,
            ),
            batch(&ana, &b, vec![item(&sealed, &ctx, &["sante"])], &list_2),
        ])
        .await??;
    assert_eq!(outcomes.len(), 4);
    assert_eq!(outcomes[0].code, Code::Ok as i32, "{:?}", outcomes[0]);
    assert_eq!(outcomes[0].results[0].plaintext, SECRET.as_bytes());
    assert_eq!(
        outcomes[1].code,
        Code::PermissionDenied as i32,
        "{:?}",
        outcomes[1]
    );
    assert!(outcomes[1].results.is_empty());
    assert_ne!(outcomes[2].code, Code::Ok as i32, "{:?}", outcomes[2]);
    assert_eq!(outcomes[3].code, Code::Ok as i32);
    assert_eq!(
        outcomes[3].results[0].refusal,
        pb::OpenRefusal::Consent as i32
    );
    let too_many = vec![batch(&ana, &b, vec![item(&sealed, &ctx, &["mobilite"])], &list_1); 65];
    refused(
        partner.open_batches(too_many).await?,
        Code::InvalidArgument,
        "batches",
    );
    refused(
        partner.open_batches(Vec::new()).await?,
        Code::InvalidArgument,
        "batches",
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let one = access_events(&sb, &ana, "referral", &list_1).await?;
        let two = access_events(&sb, &ana, "referral", &list_2).await?;
        if one.len() == 1 && two.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("one access for the batch opened, none for the others: {one:?} {two:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Not for a domain, a purpose or a structure the consent does not cover.
    refused(
        partner
            .open(&ana, &sealed, &ctx, &b, &["mobilite", "sante"], orientation)
            .await?,
        Code::PermissionDenied,
        "domaine non couvert",
    );
    refused(
        partner
            .open(
                &ana,
                &sealed,
                &ctx,
                &b,
                &["mobilite"],
                pb::ConsentPurpose::Accompagnement,
            )
            .await?,
        Code::PermissionDenied,
        "finalité non couverte",
    );
    refused(
        partner
            .open(&ana, &sealed, &ctx, &a, &["mobilite"], orientation)
            .await?,
        Code::PermissionDenied,
        "vous n'agissez pas pour cette structure",
    );
    refused(
        partner
            .open(&ana, &sealed, &ctx, &b, &["mobilité"], orientation)
            .await?,
        Code::InvalidArgument,
        "domains",
    );
    // Another person's key, another context, tampered bytes: refused naming `sealed`.
    refused(
        seller
            .open(&other, &sealed, &ctx, &a, &["mobilite"], orientation)
            .await?,
        Code::InvalidArgument,
        "sealed",
    );
    let for_other = seller.seal(&other, SECRET.as_bytes(), &ctx).await??;
    let mut moved = for_other.clone();
    moved.key_id = sealed.key_id.clone();
    refused(
        seller
            .open(&ana, &moved, &ctx, &a, &["mobilite"], orientation)
            .await?,
        Code::InvalidArgument,
        "sealed",
    );
    refused(
        partner
            .open(
                &ana,
                &sealed,
                "referral:other:diagnostic",
                &b,
                &["mobilite"],
                orientation,
            )
            .await?,
        Code::InvalidArgument,
        "sealed",
    );
    let mut tampered = sealed.clone();
    let last = tampered.ciphertext.len() - 1;
    tampered.ciphertext[last] ^= 1;
    refused(
        partner
            .open(&ana, &tampered, &ctx, &b, &["mobilite"], orientation)
            .await?,
        Code::InvalidArgument,
        "sealed",
    );
    // The follower and Ana herself open without a consent to themselves.
    assert_eq!(
        seller
            .open(&ana, &sealed, &ctx, &a, &[], orientation)
            .await??,
        SECRET.as_bytes()
    );
    assert_eq!(
        Caller::new(&ch, &ana_token)
            .open(&ana, &sealed, &ctx, "", &[], orientation)
            .await??,
        SECRET.as_bytes()
    );

    // Withdrawn: denied from then on, in identity at once.
    let (status, w) = send(
        &sb,
        Method::POST,
        &format!("/api/v1/consents/{consent_id}/withdraw"),
        &ana_token,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{w}");
    refused(
        partner
            .open(&ana, &sealed, &ctx, &b, &["mobilite"], orientation)
            .await?,
        Code::PermissionDenied,
        "consentement retiré",
    );

    // The seal and B's read are in Ana's access log, with domains and purpose.
    let write = wait_access(&sb, &ana, |a| a.action == AccessAction::Write as i32).await?;
    assert_eq!(write.resource_id, ctx);
    assert_eq!(write.actor_structure_id, a);
    let read = wait_access(&sb, &ana, |x| {
        x.action == AccessAction::Read as i32 && x.actor_structure_id == b
    })
    .await?;
    assert_eq!(read.domains, ["mobilite"]);
    assert_eq!(read.purpose, "orientation");
    assert_eq!(read.actor_role, "partner");

    // No stream holds the plaintext.
    let messages = all_stream_messages(&sb).await?;
    assert!(messages.len() > 5, "{} messages", messages.len());
    for (subject, payload, headers) in &messages {
        for bytes in [payload, headers] {
            assert!(
                !bytes.windows(b"MARQUEUR".len()).any(|w| w == b"MARQUEUR"),
                "plaintext found on {subject}"
            );
        }
    }

    // Erasure (crypto-shredding by identity's RightsService): "données effacées".
    let admin_a = sb
        .token("admin-a", vec![Role::StructureAdmin], vec![a.clone()])
        .await?;
    let mut rights = RightsServiceClient::new(ch.clone());
    let mut erase = tonic::Request::new(pb::ErasePersonRequest {
        person_id: ana.clone(),
        reason: "demande_de_la_personne".into(),
    });
    erase
        .metadata_mut()
        .insert("authorization", format!("Bearer {admin_a}").parse()?);
    rights.erase_person(erase).await?;
    refused(
        partner
            .open(&ana, &sealed, &ctx, &b, &["mobilite"], orientation)
            .await?,
        Code::FailedPrecondition,
        "données effacées",
    );
    refused(
        seller
            .open(&ana, &sealed, &ctx, &a, &["mobilite"], orientation)
            .await?,
        Code::FailedPrecondition,
        "données effacées",
    );
    refused(
        seller.seal(&ana, SECRET.as_bytes(), &ctx).await?,
        Code::NotFound,
        "personne introuvable",
    );
    sb.stop().await
}
