//! The Lambda wiring: every endpoint belongs to exactly one function, and each function's
//! sample event in `events/` parses as API Gateway sends it and routes to that function.

use stark::http::router::{self, lambdas, ALL};

#[test]
fn every_endpoint_has_exactly_one_lambda() {
    for endpoint in ALL {
        let owners: Vec<&str> = lambdas::ALL.iter().filter(|(_, eps)| eps.contains(endpoint)).map(|(n, _)| *n).collect();
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
        let (endpoint, _) = router::route(&api.method, &api.path, served)
            .unwrap_or_else(|e| panic!("{name}.json ({} {}) does not reach its Lambda: {e:?}", api.method, api.path));
        assert!(served.contains(&endpoint));
        if api.method == http::Method::POST {
            let body: serde_json::Value = serde_json::from_slice(&api.body).unwrap_or_else(|e| panic!("{name}.json body: {e}"));
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
