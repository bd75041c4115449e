//! The controlled vocabularies of the data·inclusion schema v1 that the
//! directory checks codes against (gip-inclusion/data-inclusion-schema,
//! `src/data_inclusion/schema/v1/*.py`): thématiques (a category, then
//! `--`, then the sub-thématique), types of service, fees, publics,
//! reception modes, ways and people who mobilise a service.
//!
//! A new code of the schema is one line here. The référentiel commun maps
//! its items to thématiques (`data_inclusion_thematiques` in
//! `services/diagnostics/referentiel/*.toml`); every such code must be here,
//! which a test checks against the built-in référentiel file.

/// Thématique categories (the roots a search may name).
pub const CATEGORIES: &[&str] = &[
    "choisir-un-metier",
    "creer-une-entreprise",
    "difficultes-administratives-ou-juridiques",
    "difficultes-financieres",
    "equipement-et-alimentation",
    "famille",
    "lecture-ecriture-calcul",
    "logement-hebergement",
    "mobilite",
    "numerique",
    "preparer-sa-candidature",
    "remobilisation",
    "sante",
    "se-former",
    "souvrir-a-linternational",
    "trouver-un-emploi",
];

/// Thématiques a service may carry.
pub const THEMATIQUES: &[&str] = &[
    "choisir-un-metier--confirmer-son-choix-de-metier",
    "choisir-un-metier--connaitre-les-opportunites-demploi",
    "choisir-un-metier--decouvrir-un-metier-ou-un-secteur-dactivite",
    "choisir-un-metier--identifier-ses-points-forts-et-ses-competences",
    "creer-une-entreprise--definir-son-projet-de-creation-dentreprise",
    "creer-une-entreprise--developper-son-entreprise",
    "creer-une-entreprise--structurer-son-projet-de-creation-dentreprise",
    "difficultes-administratives-ou-juridiques--accompagnement-aux-demarches-administratives",
    "difficultes-administratives-ou-juridiques--accompagnement-pour-lacces-a-la-citoyennete",
    "difficultes-administratives-ou-juridiques--accompagnement-pour-lacces-aux-droits",
    "difficultes-administratives-ou-juridiques--beneficier-dune-mesure-daccompagnement-adapte",
    "difficultes-administratives-ou-juridiques--connaitre-ses-droits-face-a-une-discrimination",
    "difficultes-administratives-ou-juridiques--prendre-en-compte-une-problematique-judiciaire",
    "difficultes-financieres--acquerir-une-autonomie-budgetaire",
    "difficultes-financieres--ameliorer-sa-gestion-budgetaire",
    "difficultes-financieres--mettre-en-place-une-mesure-de-protection-financiere",
    "difficultes-financieres--prevenir-une-degradation-de-la-situation-financiere",
    "difficultes-financieres--situation-dendettement-surendettement",
    "equipement-et-alimentation--aide-menagere",
    "equipement-et-alimentation--alimentation",
    "equipement-et-alimentation--electromenager",
    "equipement-et-alimentation--habillement",
    "famille--garde-denfants",
    "famille--prise-en-charge-personne-dependante",
    "famille--soutien-a-la-parentalite-et-a-leducation",
    "famille--soutien-aidants",
    "famille--surmonter-conflits-separation-violence",
    "lecture-ecriture-calcul--maitriser-le-calcul",
    "lecture-ecriture-calcul--maitriser-le-francais",
    "logement-hebergement--acheter-un-logement",
    "logement-hebergement--changer-de-logement",
    "logement-hebergement--louer-un-logement",
    "logement-hebergement--rechercher-une-solution-dhebergement-temporaire",
    "logement-hebergement--reduire-les-impayes-de-loyer",
    "logement-hebergement--se-maintenir-dans-le-logement",
    "logement-hebergement--sinformer-sur-les-demarches-liees-a-lacces-au-logement",
    "mobilite--acceder-a-un-vehicule",
    "mobilite--entretenir-reparer-son-vehicule",
    "mobilite--etre-accompagne-dans-son-parcours-mobilite",
    "mobilite--financer-ma-mobilite",
    "mobilite--mobilite-douce-partagee-collective",
    "mobilite--preparer-un-permis",
    "numerique--acceder-a-des-services-en-ligne",
    "numerique--acceder-a-une-connexion-internet",
    "numerique--acquerir-un-equipement",
    "numerique--maitriser-les-fondamentaux-du-numerique",
    "preparer-sa-candidature--developper-son-reseau",
    "preparer-sa-candidature--organiser-ses-demarches-de-recherche-demploi",
    "preparer-sa-candidature--realiser-un-cv-et-ou-une-lettre-de-motivation",
    "preparer-sa-candidature--valoriser-ses-competences",
    "remobilisation--activites-sportives-et-culturelles",
    "remobilisation--benevolat-action-citoyenne",
    "remobilisation--bien-etre-confiance-en-soi",
    "remobilisation--lien-social",
    "sante--acces-aux-soins",
    "sante--addictions",
    "sante--constituer-un-dossier-mdph-invalidite",
    "sante--sante-mentale",
    "sante--sante-sexuelle",
    "se-former--monter-son-dossier-de-formation",
    "se-former--trouver-sa-formation",
    "souvrir-a-linternational--connaitre-les-opportunites-demploi-a-letranger",
    "souvrir-a-linternational--sinformer-sur-les-aides-pour-travailler-a-letranger",
    "souvrir-a-linternational--sorganiser-suite-a-son-retour-en-france",
    "trouver-un-emploi--convaincre-un-recruteur-en-entretien",
    "trouver-un-emploi--faire-des-candidatures-spontanees",
    "trouver-un-emploi--maintien-dans-lemploi",
    "trouver-un-emploi--repondre-a-des-offres-demploi",
    "trouver-un-emploi--suivre-ses-candidatures-et-relancer-les-employeurs",
];

/// Types of service (`type`).
pub const TYPES: &[&str] = &[
    "accompagnement",
    "aide-financiere",
    "aide-materielle",
    "atelier",
    "formation",
    "information",
];

/// Fees (`frais`).
pub const FRAIS: &[&str] = &["gratuit", "payant"];

/// Publics (`publics`).
pub const PUBLICS: &[&str] = &[
    "actifs",
    "beneficiaires-des-minimas-sociaux",
    "demandeurs-emploi",
    "etudiants",
    "familles",
    "femmes",
    "jeunes",
    "personnes-en-situation-de-handicap",
    "personnes-en-situation-durgence",
    "personnes-en-situation-juridique-specifique",
    "personnes-exilees",
    "residents-qpv-frr",
    "seniors",
];

/// Reception modes (`modes_accueil`).
pub const MODES_ACCUEIL: &[&str] = &["a-distance", "en-presentiel"];

/// Ways to mobilise a service (`modes_mobilisation`).
pub const MODES_MOBILISATION: &[&str] = &[
    "envoyer-un-courriel",
    "se-presenter",
    "telephoner",
    "utiliser-lien-mobilisation",
];

/// Who may mobilise a service (`mobilisable_par`).
pub const MOBILISABLE_PAR: &[&str] = &["professionnels", "usagers"];

/// Whether `code` is one of `vocabulary`.
pub fn knows(vocabulary: &[&str], code: &str) -> bool {
    vocabulary.contains(&code)
}

/// The thématiques a search term stands for: itself when it is a
/// thématique, every thématique of the category when it is a category
/// (`mobilite` → `mobilite--*`); `None` when it is neither.
pub fn expand_thematique(term: &str) -> Option<Vec<&'static str>> {
    if let Some(t) = THEMATIQUES.iter().find(|t| **t == term) {
        return Some(vec![*t]);
    }
    if CATEGORIES.contains(&term) {
        let prefix = format!("{term}--");
        return Some(
            THEMATIQUES
                .iter()
                .filter(|t| t.starts_with(&prefix))
                .copied()
                .collect(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every thématique the built-in référentiel maps an item or a domain
    /// to is a code of the schema, so suggestions can find services for it.
    #[test]
    fn every_referentiel_thematique_is_known() {
        let text = include_str!("../../../diagnostics/referentiel/2026.1.toml");
        let mut seen = 0;
        let mut in_list = false;
        for line in text.lines() {
            let line = line.trim();
            let rest = if let Some(rest) = line.strip_prefix("data_inclusion_thematiques") {
                in_list = true;
                rest.trim_start().trim_start_matches('=')
            } else if in_list {
                line
            } else {
                continue;
            };
            for part in rest.split(',') {
                let code = part.trim().trim_matches(|c| c == '[' || c == ']').trim();
                let code = code.trim_matches('"');
                if code.is_empty() {
                    continue;
                }
                assert!(
                    knows(THEMATIQUES, code),
                    "référentiel thématique {code} unknown"
                );
                seen += 1;
            }
            if rest.contains(']') {
                in_list = false;
            }
        }
        assert!(seen > 50, "only {seen} thématiques read");
    }

    #[test]
    fn thematiques_belong_to_a_category() {
        for t in THEMATIQUES {
            let (root, sub) = t.split_once("--").expect("category--sub");
            assert!(CATEGORIES.contains(&root), "{t}");
            assert!(!sub.is_empty());
        }
    }

    #[test]
    fn a_category_expands_to_its_thematiques() {
        let m = expand_thematique("mobilite").expect("category");
        assert_eq!(m.len(), 6);
        assert!(m.contains(&"mobilite--preparer-un-permis"));
        assert_eq!(
            expand_thematique("mobilite--preparer-un-permis"),
            Some(vec!["mobilite--preparer-un-permis"])
        );
        assert_eq!(expand_thematique("mobil"), None);
    }
}
