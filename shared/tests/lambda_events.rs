//! The Lambda wiring: every endpoint belongs to exactly one function, and each function's
//! sample event in `events/` parses as API Gateway sends it and routes to that function.

use stark::http::router::{self, lambdas, ALL};

#[test]
fn every_endpoint_has_exactly_one_lambda() {
    for endpoint in ALL {
        let owners: Vec<&str> =
            lambdas::ALL.iter().filter(|(_, eps)| eps.contains(endpoint)).map(|(n, _)| *n).collect();
        assert_eq!(owners.len(), 1, "{endpoint:?} is served by {owners:?}");
    }
}

#[test]
fn each_sample_event_reaches_its_lambda() {
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    for (name, served) in lambdas::ALL {
        let path = events.join(format!("{name}.json"));
        let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let request = lambda_http::request::from_str(&raw).unwrap_or_else(|e| panic!("{name}.json: {e}"));
        let api = stark::lambda::to_api(request);
        if served.is_empty() {
            // The fallback's sample is a request no route takes: it must be refused, cleanly.
            let refused = router::route(&api.method, &api.path, served);
            assert!(refused.is_err(), "{name}.json ({} {}) should be refused", api.method, api.path);
            continue;
        }
        let (endpoint, _) = router::route(&api.method, &api.path, served)
            .unwrap_or_else(|e| panic!("{name}.json ({} {}) does not reach its Lambda: {e:?}", api.method, api.path));
        assert!(served.contains(&endpoint));
        if api.method == http::Method::POST {
            let body: serde_json::Value =
                serde_json::from_slice(&api.body).unwrap_or_else(|e| panic!("{name}.json body: {e}"));
            assert!(body.is_object(), "{name}.json body is not an object");
        }
    }
}

#[test]
fn each_lambda_binary_is_in_the_template() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let template = std::fs::read_to_string(root.join("template.yaml")).unwrap();
    for (name, _) in lambdas::ALL {
        assert!(template.contains(&format!("Binary: {name}\n")), "{name} missing from template.yaml");
        assert!(root.join(format!("functions/src/bin/{name}.rs")).exists(), "{name} has no binary");
    }
}

/// Each function gets exactly the secrets its endpoints need: the template's environment for
/// a function names JWT_PRIVATE_KEY, JWT_PUBLIC_KEY and OTP_PEPPER only where needed.
#[test]
fn the_template_gives_each_lambda_only_the_secrets_it_needs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let template = std::fs::read_to_string(root.join("template.yaml")).unwrap();
    for (name, served) in lambdas::ALL {
        let needs = router::Needs::of(served);
        // The function's block: from its `Binary: <name>` line to the next `Binary:`.
        let start = template.find(&format!("Binary: {name}\n")).unwrap();
        let block = &template[start..];
        let block = &block[..block[1..].find("Binary: ").map_or(block.len(), |i| i + 1)];
        let has = |var: &str| block.contains(&format!("{var}:"));
        assert_eq!(has("JWT_PRIVATE_KEY"), needs.signing_key, "{name}: JWT_PRIVATE_KEY");
        assert_eq!(has("JWT_PUBLIC_KEY"), needs.verifying_key, "{name}: JWT_PUBLIC_KEY");
        assert_eq!(has("OTP_PEPPER"), needs.otp_pepper, "{name}: OTP_PEPPER");
        if needs.email_queue {
            assert!(has("EMAIL_QUEUE_URL"), "{name}: EMAIL_QUEUE_URL");
        }
    }
}

/// The lease numbers in the code are the timeouts in the template: an Idempotency-Key claim
/// lasts as long as the purchase function may run, and an email lease as long as the sender.
#[test]
fn leases_match_the_function_timeouts() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let template: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("template.yaml")).unwrap()).unwrap();
    let global = template["Globals"]["Function"]["Timeout"].as_i64().expect("a global timeout");
    let resources = template["Resources"].as_mapping().unwrap();
    let timeout_of = |binary: &str| {
        let f = resources
            .values()
            .find(|r| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
            .unwrap_or_else(|| panic!("{binary} is in the template"));
        f["Properties"]["Timeout"].as_i64().unwrap_or(global)
    };
    assert_eq!(timeout_of("purchase"), stark::http::handlers::billing::IDEMPOTENCY_LEASE_SECS);
    assert_eq!(timeout_of("email-sender"), stark::app::notify::SENDER_TIMEOUT_SECS);
}
