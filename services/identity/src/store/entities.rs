//! sea-orm entities: one module per table of the identity database.

pub mod organization {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "organizations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub display_name: String,
        pub tenant_id: String,
        pub is_platform: bool,
        pub isv_connect_enrolled: bool,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod verified_domain {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "verified_domains")]
    pub struct Model {
        /// Lower case; unique platform-wide (one company verifies a domain).
        #[sea_orm(primary_key, auto_increment = false)]
        pub domain: String,
        pub organization_id: Uuid,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod mpn_id {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mpn_ids")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub mpn_id: String,
        pub organization_id: Uuid,
        /// `VORG` or `LOCATION`.
        pub kind: String,
        pub country_code: String,
        pub city: String,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub organization_id: Uuid,
        /// Lower case; unique within the organization.
        pub email: String,
        pub given_name: String,
        pub family_name: String,
        /// `MEMBER` or `GUEST`.
        pub kind: String,
        /// `ACTIVE` or `DISABLED`.
        pub state: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod role_assignment {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "role_assignments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub organization_id: Uuid,
        pub user_id: Uuid,
        /// The proto enum's name, e.g. `ROLE_REFERRALS_ADMIN`.
        pub role: String,
        /// Empty: the entire organization; otherwise a location MPN ID. Not NULL, so that the
        /// unique index over (user, role, scope) holds for org-wide roles too.
        pub scope: String,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod service_principal {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "service_principals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// SHA-256 of the client secret, hex; the secret itself is never stored.
        pub secret_sha256: String,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod signing_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "signing_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        /// PKCS#8 DER of the Ed25519 private key, base64.
        pub private_pkcs8: String,
        /// The public key, base64url (JWK `x`).
        pub public_x: String,
        pub create_time: DateTimeUtc,
        /// When it starts signing; NULL: from `create_time`.
        pub activate_time: Option<DateTimeUtc>,
        /// When it stops signing; NULL while no newer key is due.
        pub retire_time: Option<DateTimeUtc>,
        /// When it stops verifying: after every token it signed has expired.
        pub expire_time: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
