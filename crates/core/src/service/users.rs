//! Accounts: registration, login, token refresh, staff management, the audit log.

use serde_json::json;

use crate::auth::{hash_password, random_token, token_hash, verify_password, Principal};
use crate::cart::is_email;
use crate::customer::{Customer, RefreshToken, Role};
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult, FieldError};
use crate::events::DomainEvent;
use crate::ids::CustomerId;
use crate::ports::{AuditEntry, Tx};

/// Tokens handed out at login and refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// Short-lived JWT.
    pub access_token: String,
    /// Opaque, single-use refresh token.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The user.
    pub customer: Customer,
}

/// What an admin changes on a staff account; `None` leaves it as it is.
#[derive(Debug, Clone, Default)]
pub struct StaffUpdate {
    /// `operator` or `admin`.
    pub role: Option<Role>,
    /// `true` disables the account (it cannot sign in, its tokens stop working at once),
    /// `false` enables it again.
    pub disabled: Option<bool>,
    /// A new password (8-128 characters); signs the account out everywhere.
    pub password: Option<String>,
}

/// A login attempt.
#[derive(Debug, Clone)]
pub struct LoginAttempt<'a> {
    /// E-mail.
    pub email: &'a str,
    /// Password.
    pub password: &'a str,
    /// Client address, for per-address rate limiting.
    pub client_ip: Option<&'a str>,
    /// Admin login: only staff roles may sign in.
    pub staff_only: bool,
}

fn validate_credentials(email: &str, password: &str) -> CoreResult<String> {
    let mut errors = Vec::new();
    let email = email.trim().to_lowercase();
    if !is_email(&email) {
        errors.push(FieldError::new(
            "email",
            "invalid_format",
            "not an e-mail address",
        ));
    }
    errors.extend(password_error(password));
    if !errors.is_empty() {
        return Err(CoreError::validation(errors));
    }
    Ok(email)
}

/// The one password rule: 8-128 characters.
fn password_error(password: &str) -> Option<FieldError> {
    (!(8..=128).contains(&password.chars().count()))
        .then(|| FieldError::new("password", "invalid_length", "between 8 and 128 characters"))
}

/// A fixed Argon2 hash verified when the account does not exist, so that response
/// time does not reveal which e-mails are registered.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$9Hb5AhsVYyTzQXzGMaZ0kUt2oP6T5sSPZ3aXa5ShH1s";

impl Engine {
    async fn new_account(
        &self,
        email: &str,
        password: &str,
        role: Role,
    ) -> CoreResult<(Customer, Box<dyn crate::ports::Tx>)> {
        let email = validate_credentials(email, password)?;
        let hash = hash_password(password.to_string()).await?;
        let customer = Customer {
            id: CustomerId::new(),
            email,
            password_hash: hash,
            role,
            created_at: self.now(),
            disabled_at: None,
            session_version: 0,
        };
        let mut tx = self.0.store.begin().await?;
        tx.insert_customer(&customer).await?;
        Ok((customer, tx))
    }

    fn registered(&self, c: &Customer) -> DomainEvent {
        DomainEvent::new(
            "customer.registered",
            "customer",
            c.id,
            self.now(),
            json!({"customer_id": c.id, "role": c.role}),
        )
    }

    /// `customer.updated`: the account as it is after a change (never its password).
    fn account_updated(&self, c: &Customer) -> DomainEvent {
        DomainEvent::new(
            "customer.updated",
            "customer",
            c.id,
            self.now(),
            json!({"customer_id": c.id, "role": c.role, "disabled": c.disabled_at.is_some()}),
        )
    }

    /// Registers a buyer.
    pub async fn register(&self, email: &str, password: &str) -> CoreResult<Customer> {
        let (c, tx) = self.new_account(email, password, Role::Customer).await?;
        self.commit(tx, &[self.registered(&c)]).await?;
        Ok(c)
    }

    /// Creates a staff user (admins only).
    pub async fn create_staff(
        &self,
        admin: &Principal,
        email: &str,
        password: &str,
        role: Role,
    ) -> CoreResult<Customer> {
        if admin.role != Role::Admin {
            return Err(CoreError::Forbidden(
                "only admins manage staff users".into(),
            ));
        }
        if !role.is_staff() {
            return Err(CoreError::invalid_field(
                "role",
                "invalid_value",
                "operator or admin",
            ));
        }
        let (c, mut tx) = self.new_account(email, password, role).await?;
        tx.append_audit(&self.audit(
            admin,
            "user.create",
            "user",
            c.id,
            json!({"email": c.email, "role": c.role}),
        ))
        .await?;
        self.commit(tx, &[self.registered(&c)]).await?;
        Ok(c)
    }

    /// Staff users (admins only).
    pub async fn staff_users(&self, admin: &Principal) -> CoreResult<Vec<Customer>> {
        if admin.role != Role::Admin {
            return Err(CoreError::Forbidden(
                "only admins manage staff users".into(),
            ));
        }
        self.0
            .store
            .read()
            .await?
            .customers_with_roles(&[Role::Operator, Role::Admin])
            .await
    }

    /// Changes a staff account's role, password or whether it is disabled (admins only).
    /// Disabling or a new password revokes the account's refresh tokens, and
    /// [`Engine::session`] refuses its access tokens from the next request on. A
    /// change that would leave no enabled admin is refused (`last_admin`), so the store
    /// can never lock itself out.
    pub async fn update_staff(
        &self,
        admin: &Principal,
        id: CustomerId,
        change: StaffUpdate,
    ) -> CoreResult<Customer> {
        if admin.role != Role::Admin {
            return Err(CoreError::Forbidden(
                "only admins manage staff users".into(),
            ));
        }
        let mut errors = Vec::new();
        if change.role.is_some_and(|r| !r.is_staff()) {
            errors.push(FieldError::new(
                "role",
                "invalid_value",
                "operator or admin",
            ));
        }
        errors.extend(change.password.as_deref().and_then(password_error));
        if !errors.is_empty() {
            return Err(CoreError::validation(errors));
        }
        let new_hash = match &change.password {
            Some(p) => Some(hash_password(p.clone()).await?),
            None => None,
        };
        let mut tx = self.0.store.begin().await?;
        // Every staff change takes this one lock, so two admins demoting each other at
        // once cannot both pass the last-admin check below.
        tx.lock_buyer("staff-accounts").await?;
        let before = tx
            .customer(id)
            .await?
            .filter(|c| c.role.is_staff())
            .ok_or(CoreError::NotFound { entity: "user" })?;
        let now = self.now();
        let mut after = before.clone();
        if let Some(role) = change.role {
            after.role = role;
        }
        match change.disabled {
            Some(true) if after.disabled_at.is_none() => {
                after.disabled_at = Some(now);
            }
            Some(false) => after.disabled_at = None,
            _ => {}
        }
        if let Some(h) = new_hash {
            after.password_hash = h;
        }
        // A new password or a disable ends every session: refresh tokens are revoked
        // below, access tokens fall behind the version (enabling the account again
        // does not bring them back). The account is locked, so a login racing this
        // change issued its token under the old version or reads the new one.
        if after.password_hash != before.password_hash
            || (after.disabled_at.is_some() && before.disabled_at.is_none())
        {
            after.session_version = before.session_version + 1;
        }
        let active_admin = |c: &Customer| c.role == Role::Admin && c.disabled_at.is_none();
        if active_admin(&before) && !active_admin(&after) {
            let others = tx
                .customers_with_roles(&[Role::Admin])
                .await?
                .iter()
                .filter(|c| c.id != id && active_admin(c))
                .count();
            if others == 0 {
                return Err(CoreError::conflict(
                    "last_admin",
                    "this is the only enabled admin; make another admin first",
                ));
            }
        }
        if !tx.update_customer(&after).await? {
            return Err(CoreError::NotFound { entity: "user" });
        }
        let signed_out = after.disabled_at.is_some() || change.password.is_some();
        if signed_out {
            tx.revoke_customer_tokens(id).await?;
        }
        tx.append_audit(&self.audit(
            admin,
            "user.update",
            "user",
            id,
            json!({
                "email": after.email,
                "role": after.role,
                "disabled": after.disabled_at.is_some(),
                "password_reset": change.password.is_some(),
            }),
        ))
        .await?;
        self.commit(tx, &[self.account_updated(&after)]).await?;
        Ok(after)
    }

    /// The account an access token names, as it is now: a token of a disabled or
    /// deleted account, or one issued before the password last changed (or the account
    /// was disabled), is refused without waiting for the token to expire, and the
    /// account's current role is the one that acts. Both APIs call it on every request
    /// that carries a token: a buyer who changes a stolen password, or an operator who
    /// disables an account, cuts every session off at once.
    pub async fn session(&self, token: &crate::auth::Claims) -> CoreResult<Principal> {
        let account = self.0.store.read().await?.customer(token.sub).await?;
        // Tokens issued before a password change (or reset, or a disable) are refused:
        // a reset is how an admin cuts off someone who stole a session.
        let stale = |c: &Customer| token.sv != c.session_version;
        match account {
            None => Err(CoreError::Unauthorized("this account no longer exists".into())),
            Some(c) if c.disabled_at.is_some() => Err(CoreError::Unauthorized(
                "this account is disabled; sign in again once an admin enables it".into(),
            )),
            Some(c) if stale(&c) => Err(CoreError::Unauthorized(
                "this session ended (a password change, or the account was disabled); sign in again"
                    .into(),
            )),
            Some(c) => Ok(Principal {
                id: c.id,
                email: c.email,
                role: c.role,
            }),
        }
    }

    /// [`session`](Self::session) for the admin API: a demoted admin acts with the new
    /// role, a staff member demoted to customer is refused (403).
    pub async fn staff_session(&self, token: &crate::auth::Claims) -> CoreResult<Principal> {
        let p = self.session(token).await?;
        if p.role.is_staff() {
            Ok(p)
        } else {
            Err(CoreError::Forbidden(
                "operator or admin role required".into(),
            ))
        }
    }

    /// Creates the first admin if no account has that e-mail yet; returns whether it did.
    pub async fn bootstrap_admin(&self, email: &str, password: &str) -> CoreResult<bool> {
        let normalized = email.trim().to_lowercase();
        if self
            .0
            .store
            .read()
            .await?
            .customer_by_email(&normalized)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let (c, tx) = self.new_account(email, password, Role::Admin).await?;
        self.commit(tx, &[self.registered(&c)]).await?;
        Ok(true)
    }

    /// Verifies credentials and issues tokens. Failed attempts are limited per account
    /// and per client address.
    pub async fn login(&self, attempt: LoginAttempt<'_>) -> CoreResult<TokenPair> {
        let email = attempt.email.trim().to_lowercase();
        if email.is_empty()
            || email.len() > 254
            || attempt.password.is_empty()
            || attempt.password.len() > 1024
        {
            return Err(CoreError::Unauthorized("invalid e-mail or password".into()));
        }
        let s = &self.0.settings;
        let limiter = &self.0.limiter;
        let account_key = format!("login:acct:{email}");
        let ip_key = attempt
            .client_ip
            .map(|ip| format!("login:ip:{}", limit_address(ip)));
        // Each attempt is counted before the password is checked (atomically with the
        // limit check, so a burst sent at once cannot slip past it) and taken back
        // below unless it turns out a failure. The address first: a limited address
        // trying e-mail after e-mail then adds no per-account window per e-mail.
        if let Some(k) = &ip_key {
            // Addresses get more room: many buyers can share one NAT.
            limiter
                .acquire(k, s.login_limit * 5, s.login_window)
                .await?;
        }
        if let Err(e) = limiter
            .acquire(&account_key, s.login_limit, s.login_window)
            .await
        {
            if let Some(k) = &ip_key {
                limiter.release(k).await?;
            }
            return Err(e);
        }
        let verified = self.verify_login(&email, &attempt).await;
        let customer = match verified {
            Ok(c) => c,
            // A failure: the attempts stay counted.
            Err(e @ CoreError::Unauthorized(_)) => return Err(e),
            // Not the caller's doing (the store did not answer): not a failure.
            Err(e) => {
                for k in std::iter::once(&account_key).chain(&ip_key) {
                    limiter.release(k).await?;
                }
                return Err(e);
            }
        };
        limiter.reset(&account_key).await?;
        if let Some(k) = &ip_key {
            limiter.release(k).await?;
        }
        let mut tx = self.0.store.begin().await?;
        // The password was checked outside any transaction (hashing is slow); with the
        // account now locked, make sure no reset or disable landed in between, or the
        // token stored below would outlive the revocation it raced.
        // The tokens are issued from this locked read, not the earlier one: a disable
        // and re-enable in between leaves the hash alone but moves the session version
        // (and a role change would change what the token says).
        let current = tx
            .customer(customer.id)
            .await?
            .filter(|c| c.password_hash == customer.password_hash && c.disabled_at.is_none())
            .filter(|c| !attempt.staff_only || c.role.is_staff())
            .ok_or_else(|| CoreError::Unauthorized("invalid e-mail or password".into()))?;
        let pair = self.issue_tokens(&mut *tx, current, None).await?;
        self.commit(tx, &[]).await?;
        Ok(pair)
    }

    /// The account `email` names if `attempt`'s password is its password (and, for an
    /// admin login, it is staff); `Unauthorized` otherwise, in the same time either way.
    async fn verify_login(&self, email: &str, attempt: &LoginAttempt<'_>) -> CoreResult<Customer> {
        let found = self.0.store.read().await?.customer_by_email(email).await?;
        let hash = found
            .as_ref()
            .map(|c| c.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = verify_password(attempt.password.to_string(), hash).await?;
        match found {
            Some(c)
                if ok && c.disabled_at.is_none() && (!attempt.staff_only || c.role.is_staff()) =>
            {
                Ok(c)
            }
            _ => Err(CoreError::Unauthorized("invalid e-mail or password".into())),
        }
    }

    /// A new access token and a refresh token stored through `tx`: the caller commits,
    /// so a rotation marks the old token used and stores its successor at once.
    async fn issue_tokens(
        &self,
        tx: &mut dyn Tx,
        customer: Customer,
        family: Option<String>,
    ) -> CoreResult<TokenPair> {
        let now = self.now();
        let access_token = self.0.tokens.issue(
            customer.id,
            &customer.email,
            customer.role,
            customer.session_version,
            now,
        )?;
        let refresh_token = random_token()?;
        let record = RefreshToken {
            token_hash: token_hash(&refresh_token),
            family: family.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            customer_id: customer.id,
            expires_at: now + self.0.settings.refresh_ttl,
            used_at: None,
            revoked: false,
        };
        tx.insert_refresh_token(&record).await?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: self.0.tokens.ttl().num_seconds(),
            customer,
        })
    }

    /// Trades a refresh token for a new pair. A token is good once: replaying a used
    /// one revokes its whole family, logging out whoever stole it (and the owner).
    pub async fn refresh(&self, refresh_token: &str) -> CoreResult<TokenPair> {
        let bad = || CoreError::Unauthorized("invalid or expired refresh token".into());
        if refresh_token.is_empty() || refresh_token.len() > 256 {
            return Err(bad());
        }
        let hash = token_hash(refresh_token);
        let now = self.now();
        let mut tx = self.0.store.begin().await?;
        let owner = tx.refresh_token(&hash).await?.ok_or_else(bad)?.customer_id;
        // The account first, locked (as password changes and staff changes lock it
        // before they revoke), then the token as it is now: a revocation racing this
        // call either lands before it (and is seen) or waits for its commit (and
        // revokes the successor too).
        let customer = tx
            .customer(owner)
            .await?
            .filter(|c| c.disabled_at.is_none())
            .ok_or_else(bad)?;
        let record = tx.refresh_token(&hash).await?.ok_or_else(bad)?;
        if record.revoked || record.expires_at <= now {
            return Err(bad());
        }
        if record.used_at.is_some() || !tx.use_refresh_token(&hash, now).await? {
            tx.revoke_refresh_family(&record.family).await?;
            self.commit(tx, &[]).await?;
            tracing::warn!(customer = %record.customer_id, "refresh token replayed; family revoked");
            return Err(CoreError::Unauthorized(
                "refresh token was already used; sign in again".into(),
            ));
        }
        // The successor is stored in the transaction that marks this token used. Were it
        // stored after, a replay racing this call could revoke the family in between and
        // the successor, inserted after the revocation, would stay valid.
        let pair = self
            .issue_tokens(&mut *tx, customer, Some(record.family))
            .await?;
        self.commit(tx, &[]).await?;
        Ok(pair)
    }

    /// Signs one device out: the refresh token's chain (this login and its rotations)
    /// is revoked; other devices stay signed in. An unknown or already revoked token is
    /// not an error, so signing out twice is harmless. The access token lives on until
    /// it expires (15 minutes); clients drop it.
    pub async fn logout(&self, refresh_token: &str) -> CoreResult<()> {
        if refresh_token.is_empty() || refresh_token.len() > 256 {
            return Ok(());
        }
        let mut tx = self.0.store.begin().await?;
        if let Some(record) = tx.refresh_token(&token_hash(refresh_token)).await? {
            // The account lock first, as a refresh takes it: a refresh of this chain
            // running now has then either stored its successor (revoked below) or
            // not started.
            tx.customer(record.customer_id).await?;
            tx.revoke_refresh_family(&record.family).await?;
            self.commit(tx, &[]).await?;
        }
        Ok(())
    }

    /// Changes the caller's own password after checking the current one. Every session
    /// of the account is signed out and this caller gets a fresh pair. Wrong current
    /// passwords count against the account's login limit, so this route is no way
    /// around it.
    pub async fn change_password(
        &self,
        who: &Principal,
        current: &str,
        new: &str,
    ) -> CoreResult<TokenPair> {
        if let Some(mut e) = password_error(new) {
            e.field = "new_password".into();
            return Err(CoreError::validation(vec![e]));
        }
        let s = &self.0.settings;
        let limiter = &self.0.limiter;
        let account_key = format!("login:acct:{}", who.email);
        limiter
            .acquire(&account_key, s.login_limit, s.login_window)
            .await?;
        let account = match self.0.store.read().await?.customer(who.id).await {
            Ok(Some(c)) if c.disabled_at.is_none() => c,
            Ok(_) => {
                limiter.release(&account_key).await?;
                return Err(CoreError::Unauthorized(
                    "this account is disabled or gone".into(),
                ));
            }
            Err(e) => {
                limiter.release(&account_key).await?;
                return Err(e);
            }
        };
        let ok = verify_password(current.to_string(), account.password_hash.clone()).await;
        match ok {
            Ok(true) => limiter.reset(&account_key).await?,
            Ok(false) => {
                return Err(CoreError::invalid_field(
                    "current_password",
                    "incorrect",
                    "the current password is not correct",
                ))
            }
            Err(e) => {
                limiter.release(&account_key).await?;
                return Err(e);
            }
        }
        let hash = hash_password(new.to_string()).await?;
        let mut tx = self.0.store.begin().await?;
        // Read again in the transaction: an admin may have changed the role meanwhile,
        // and only the password is this call's to change.
        let mut after = tx
            .customer(who.id)
            .await?
            .filter(|c| c.disabled_at.is_none())
            .ok_or_else(|| CoreError::Unauthorized("this account is disabled or gone".into()))?;
        if after.password_hash != account.password_hash {
            // Changed (reset by an admin, or another change) since `current` was
            // checked: that check no longer proves anything.
            return Err(CoreError::conflict(
                "concurrent_update",
                "the password changed while this request ran; sign in again",
            ));
        }
        after.password_hash = hash;
        after.session_version += 1;
        tx.update_customer(&after).await?;
        tx.revoke_customer_tokens(after.id).await?;
        if after.role.is_staff() {
            tx.append_audit(&self.audit(
                who,
                "user.password",
                "user",
                after.id,
                json!({"email": after.email}),
            ))
            .await?;
        }
        let event = self.account_updated(&after);
        let pair = self.issue_tokens(&mut *tx, after, None).await?;
        self.commit(tx, &[event]).await?;
        Ok(pair)
    }

    /// The signed-in user's account.
    pub async fn me(&self, who: &Principal) -> CoreResult<Customer> {
        self.0
            .store
            .read()
            .await?
            .customer(who.id)
            .await?
            .ok_or(CoreError::Unauthorized("account no longer exists".into()))
    }

    /// The audit log, newest first.
    pub async fn audit_log(&self, limit: u32, before: Option<i64>) -> CoreResult<Vec<AuditEntry>> {
        self.0
            .store
            .read()
            .await?
            .audit_entries(limit.clamp(1, 500), before)
            .await
    }
}

/// What the per-address login limit counts by: an IPv4 address as it is (also when
/// written IPv4-mapped, `::ffff:a.b.c.d`), an IPv6 address by its /64, the smallest
/// block a single subscriber is given: counting each of its addresses apart would give
/// one client 2^64 budgets.
fn limit_address(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_string(),
    }
}

#[cfg(test)]
mod limit_address_tests {
    use super::limit_address;

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(limit_address("203.0.113.7"), "203.0.113.7");
        assert_eq!(limit_address("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(limit_address("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(
            limit_address("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            "2001:db8:1:2::/64"
        );
        assert_ne!(
            limit_address("2001:db8:1:3::1"),
            limit_address("2001:db8:1:2::1")
        );
    }
}
