//! The route table. Every Lambda and the local server match requests against this one table;
//! a Lambda is given the endpoints it serves.

use http::Method;

use super::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Health,
    Signup,
    VerifyOtp,
    Login,
    ResendOtp,
    Refresh,
    Logout,
    Me,
    ForgotPassword,
    ResetPassword,
    ListProducts,
    GetProduct,
    CreateProduct,
    UpdateProduct,
    AddPlan,
    Subscribers,
    StartTrial,
    Purchase,
    MySubscriptions,
    CancelSubscription,
    Wallet,
    GrantRole,
    CreditWallet,
}

/// What an endpoint needs from its deployment, checked when a Lambda starts so that a
/// missing secret is an init error, not a 500 on every request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub signing_key: bool,
    pub verifying_key: bool,
    pub otp_pepper: bool,
    pub email_queue: bool,
}

impl Needs {
    /// What a Lambda serving all of `endpoints` needs.
    pub fn of(endpoints: &[Endpoint]) -> Needs {
        endpoints.iter().map(|e| e.needs()).fold(Needs::default(), |a, b| Needs {
            signing_key: a.signing_key || b.signing_key,
            verifying_key: a.verifying_key || b.verifying_key,
            otp_pepper: a.otp_pepper || b.otp_pepper,
            email_queue: a.email_queue || b.email_queue,
        })
    }
}

impl Endpoint {
    pub fn needs(self) -> Needs {
        use Endpoint::*;
        match self {
            Health => Needs::default(),
            Login | Refresh => Needs { signing_key: true, ..Needs::default() },
            Logout => Needs::default(),
            Me => Needs { verifying_key: true, ..Needs::default() },
            VerifyOtp | ResetPassword => Needs { otp_pepper: true, ..Needs::default() },
            Signup | ResendOtp | ForgotPassword => Needs { otp_pepper: true, email_queue: true, ..Needs::default() },
            ListProducts | GetProduct => Needs::default(),
            StartTrial | Purchase | CancelSubscription => {
                Needs { verifying_key: true, email_queue: true, ..Needs::default() }
            }
            CreateProduct | UpdateProduct | AddPlan | Subscribers | MySubscriptions | Wallet | GrantRole
            | CreditWallet => Needs { verifying_key: true, ..Needs::default() },
        }
    }
}

/// (method, path pattern without the trailing slash, endpoint). `{name}` matches a segment.
pub const ROUTES: &[(Method, &str, Endpoint)] = &[
    (Method::GET, "/api/health", Endpoint::Health),
    (Method::POST, "/api/auth/signup", Endpoint::Signup),
    (Method::POST, "/api/auth/verify-otp", Endpoint::VerifyOtp),
    (Method::POST, "/api/auth/login", Endpoint::Login),
    (Method::POST, "/api/auth/resend-otp", Endpoint::ResendOtp),
    (Method::POST, "/api/auth/refresh", Endpoint::Refresh),
    (Method::POST, "/api/auth/logout", Endpoint::Logout),
    (Method::GET, "/api/auth/me", Endpoint::Me),
    (Method::POST, "/api/auth/forgot-password", Endpoint::ForgotPassword),
    (Method::POST, "/api/auth/reset-password", Endpoint::ResetPassword),
    (Method::GET, "/api/services/products", Endpoint::ListProducts),
    (Method::POST, "/api/services/products", Endpoint::CreateProduct),
    (Method::GET, "/api/services/products/{product_id}", Endpoint::GetProduct),
    (Method::PATCH, "/api/services/products/{product_id}", Endpoint::UpdateProduct),
    (Method::POST, "/api/services/products/{product_id}/plans", Endpoint::AddPlan),
    (Method::GET, "/api/services/products/{product_id}/subscribers", Endpoint::Subscribers),
    (Method::POST, "/api/services/start-trial", Endpoint::StartTrial),
    (Method::POST, "/api/services/purchase", Endpoint::Purchase),
    (Method::GET, "/api/services/my-subscriptions", Endpoint::MySubscriptions),
    (Method::POST, "/api/services/subscriptions/{subscription_id}/cancel", Endpoint::CancelSubscription),
    (Method::GET, "/api/services/wallet", Endpoint::Wallet),
    (Method::POST, "/api/admin/users/role", Endpoint::GrantRole),
    (Method::POST, "/api/admin/wallet/credit", Endpoint::CreditWallet),
];

pub const ALL: &[Endpoint] = &[
    Endpoint::Health,
    Endpoint::Signup,
    Endpoint::VerifyOtp,
    Endpoint::Login,
    Endpoint::ResendOtp,
    Endpoint::Refresh,
    Endpoint::Logout,
    Endpoint::Me,
    Endpoint::ForgotPassword,
    Endpoint::ResetPassword,
    Endpoint::ListProducts,
    Endpoint::GetProduct,
    Endpoint::CreateProduct,
    Endpoint::UpdateProduct,
    Endpoint::AddPlan,
    Endpoint::Subscribers,
    Endpoint::StartTrial,
    Endpoint::Purchase,
    Endpoint::MySubscriptions,
    Endpoint::CancelSubscription,
    Endpoint::Wallet,
    Endpoint::GrantRole,
    Endpoint::CreditWallet,
];

/// Values captured by `{name}` segments.
pub type PathParams = Vec<(&'static str, String)>;

/// The value captured for `{name}` (empty when the route has none).
pub fn param<'a>(params: &'a PathParams, name: &str) -> &'a str {
    params.iter().find(|(k, _)| *k == name).map_or("", |(_, v)| v.as_str())
}

fn matches(pattern: &'static str, path: &str) -> Option<PathParams> {
    let mut params = Vec::new();
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some(params),
            (Some(pp), Some(ss)) if pp.starts_with('{') && pp.ends_with('}') && !ss.is_empty() => {
                params.push((&pp[1..pp.len() - 1], ss.to_string()));
            }
            (Some(pp), Some(ss)) if pp == ss => {}
            _ => return None,
        }
    }
}

/// Finds the endpoint for `method` and `path`. The path may come with or without its
/// trailing slash. Whether the path exists, and which methods it allows, is decided against
/// the whole table, so every Lambda (and the `$default` fallback) answers a wrong method with
/// 405 and `Allow`; an endpoint that exists but is not among `served` is another Lambda's,
/// and 404 here.
pub fn route(method: &Method, path: &str, served: &[Endpoint]) -> Result<(Endpoint, PathParams), ApiError> {
    let path = if path.len() > 1 { path.strip_suffix('/').unwrap_or(path) } else { path };
    let mut allowed = Vec::new();
    for (m, pattern, endpoint) in ROUTES {
        if let Some(params) = matches(pattern, path) {
            if m == method {
                return if served.contains(endpoint) {
                    Ok((*endpoint, params))
                } else {
                    Err(ApiError::client(http::StatusCode::NOT_FOUND, "not_found"))
                };
            }
            allowed.push(m.clone());
        }
    }
    if allowed.is_empty() {
        Err(ApiError::client(http::StatusCode::NOT_FOUND, "not_found"))
    } else {
        Err(ApiError::MethodNotAllowed(allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slash_is_optional() {
        assert_eq!(route(&Method::POST, "/api/auth/login/", ALL).unwrap().0, Endpoint::Login);
        assert_eq!(route(&Method::POST, "/api/auth/login", ALL).unwrap().0, Endpoint::Login);
    }

    #[test]
    fn unknown_is_404_and_wrong_method_405() {
        assert!(matches!(route(&Method::GET, "/api/nope/", ALL), Err(ApiError::Client { code: "not_found", .. })));
        match route(&Method::GET, "/api/auth/login/", ALL) {
            Err(ApiError::MethodNotAllowed(m)) => assert_eq!(m, vec![Method::POST]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lambda_serves_only_its_endpoints_but_knows_every_path() {
        assert!(matches!(
            route(&Method::POST, "/api/auth/login/", &[Endpoint::Signup]),
            Err(ApiError::Client { code: "not_found", .. })
        ));
        // The fallback serves nothing, yet answers a wrong method on a known path with 405.
        match route(&Method::GET, "/api/auth/login/", lambdas::FALLBACK) {
            Err(ApiError::MethodNotAllowed(m)) => assert_eq!(m, vec![Method::POST]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn params_are_captured() {
        assert_eq!(matches("/a/{id}/b", "/a/X-1/b"), Some(vec![("id", "X-1".to_string())]));
        assert_eq!(matches("/a/{id}/b", "/a//b"), None);
    }
}

/// Which endpoints each Lambda serves. The binaries in `functions/` take their list from
/// here, and a test checks that every endpoint has exactly one Lambda and that each
/// Lambda's sample event in `events/` reaches it.
pub mod lambdas {
    use super::Endpoint;

    pub const SIGNUP: &[Endpoint] = &[Endpoint::Signup];
    pub const VERIFY_OTP: &[Endpoint] = &[Endpoint::VerifyOtp];
    pub const LOGIN: &[Endpoint] = &[Endpoint::Login];
    pub const RESEND_OTP: &[Endpoint] = &[Endpoint::ResendOtp];
    /// Refresh and logout issue or revoke sessions: they hold the private key.
    pub const SESSION: &[Endpoint] = &[Endpoint::Refresh, Endpoint::Logout];
    /// Only checks tokens: it gets the public key alone.
    pub const ME: &[Endpoint] = &[Endpoint::Me];
    pub const PASSWORD: &[Endpoint] = &[Endpoint::ForgotPassword, Endpoint::ResetPassword];
    pub const HEALTH: &[Endpoint] = &[Endpoint::Health];
    /// Reading the catalog needs no key at all.
    pub const PRODUCTS: &[Endpoint] = &[Endpoint::ListProducts, Endpoint::GetProduct];
    /// Writing the catalog, and the owner's view of its subscribers.
    pub const CATALOG: &[Endpoint] =
        &[Endpoint::CreateProduct, Endpoint::UpdateProduct, Endpoint::AddPlan, Endpoint::Subscribers];
    pub const START_TRIAL: &[Endpoint] = &[Endpoint::StartTrial];
    pub const PURCHASE: &[Endpoint] = &[Endpoint::Purchase];
    pub const MY_SUBSCRIPTIONS: &[Endpoint] = &[Endpoint::MySubscriptions];
    pub const SUBSCRIPTIONS: &[Endpoint] = &[Endpoint::CancelSubscription];
    pub const WALLET: &[Endpoint] = &[Endpoint::Wallet];
    pub const ADMIN: &[Endpoint] = &[Endpoint::GrantRole, Endpoint::CreditWallet];
    /// API Gateway's `$default` route: whatever no other route takes. It serves no endpoint
    /// and answers with the contract's 404 or 405 envelope instead of API Gateway's own.
    pub const FALLBACK: &[Endpoint] = &[];

    /// (binary name, endpoints).
    pub const ALL: &[(&str, &[Endpoint])] = &[
        ("signup", SIGNUP),
        ("verify-otp", VERIFY_OTP),
        ("login", LOGIN),
        ("resend-otp", RESEND_OTP),
        ("session", SESSION),
        ("me", ME),
        ("password", PASSWORD),
        ("health", HEALTH),
        ("products", PRODUCTS),
        ("catalog", CATALOG),
        ("start-trial", START_TRIAL),
        ("purchase", PURCHASE),
        ("my-subscriptions", MY_SUBSCRIPTIONS),
        ("subscriptions", SUBSCRIPTIONS),
        ("wallet", WALLET),
        ("admin", ADMIN),
        ("fallback", FALLBACK),
    ];
}
